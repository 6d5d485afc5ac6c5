//! How the process asks glibc's allocator to hold memory.
//!
//! glibc gives each thread that allocates its own arena, up to eight per core
//! (`M_ARENA_MAX`, glibc `malloc/arena.c`), and memory freed in one arena is
//! reused only by the threads of that arena. A dry run reads the container
//! records with several threads and walks the data root with up to eight
//! more, each filling its arena once and leaving it mostly free: at 11,000
//! containers the peak RSS was 80 MB with 49 MB of heap in use (README,
//! Benchmarks: `MALLOC_ARENA_MAX=2` gave 67 MB, `1` gave 66 MB). Two rather
//! than one so that the threads do not all take turns at one lock; that cost
//! was not measured.
//!
//! Blocks of 128 KiB and more are mapped on their own and given back when
//! freed. That is glibc's starting threshold, but glibc raises it (up to
//! 32 MiB) each time such a block is freed (`malloc/malloc.c`,
//! `mp_.no_dyn_threshold`), after which the engine's large JSON answers and
//! the vectors that grow with the number of containers stay in the arenas
//! once freed. Setting it fixes it: at 11,000 containers on overlay2 the
//! peak RSS went from 35.6–37.1 MiB to 33.8–36.0 MiB warm and from
//! 37.4–37.7 MiB to 36.8–37.2 MiB on first runs, in the same time (README,
//! Benchmarks).

/// glibc's `mallopt` parameters (`malloc.h`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const M_ARENA_MAX: std::ffi::c_int = -8;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const M_MMAP_THRESHOLD: std::ffi::c_int = -3;

/// At most two allocator arenas and large blocks mapped on their own, unless
/// `MALLOC_ARENA_MAX` or `MALLOC_MMAP_THRESHOLD_` say otherwise (glibc reads
/// them before `main`; the operator's choice stands).
pub(crate) fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        for (param, value, variable) in [
            (M_ARENA_MAX, 2, "MALLOC_ARENA_MAX"),
            (M_MMAP_THRESHOLD, 128 * 1024, "MALLOC_MMAP_THRESHOLD_"),
        ] {
            if std::env::var_os(variable).is_none() {
                // SAFETY: mallopt only sets a tunable of the allocator; it is
                // called before this process starts any thread of its own.
                let _ = unsafe { mallopt(param, value) };
            }
        }
    }
}
