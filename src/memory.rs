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

/// glibc's `mallopt` parameter for the number of arenas (`malloc.h`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const M_ARENA_MAX: std::ffi::c_int = -8;

/// At most two allocator arenas, unless `MALLOC_ARENA_MAX` says otherwise
/// (glibc reads it before `main`; the operator's choice stands).
pub(crate) fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        unsafe extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        // SAFETY: mallopt only sets a tunable of the allocator; it is called
        // once, before this process starts any thread of its own.
        let _ = unsafe { mallopt(M_ARENA_MAX, 2) };
    }
}
