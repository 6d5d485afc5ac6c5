//! What every format shares: the JSON contract's version, bytes, ages and
//! times, names cut to fit, wrapping to the terminal.

use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use humansize::{DECIMAL, format_size};

/// The JSON contract's version; bump it on any incompatible change.
pub(crate) const SCHEMA_VERSION: u32 = 1;

pub(crate) fn bytes(n: u64) -> String {
    format_size(n, DECIMAL)
}

/// "5m", "3h", "2days": the largest whole unit, as humantime spells it.
pub(crate) fn age(seconds: i64) -> String {
    const UNITS: [u64; 5] = [7 * 86_400, 86_400, 3_600, 60, 1];
    let seconds = u64::try_from(seconds).unwrap_or(0);
    let unit = UNITS
        .iter()
        .copied()
        .find(|unit| seconds >= *unit)
        .unwrap_or(1);
    humantime::format_duration(Duration::from_secs(seconds / unit * unit)).to_string()
}

/// The header's first line: which engine, at which host, through which context.
pub(crate) fn engine_line(engine: &crate::model::EngineInfo) -> String {
    let context = engine
        .context
        .as_deref()
        .map(|name| format!(" (context {name})"))
        .unwrap_or_default();
    let line = format!(
        "{} {} (API {}) at {}{context}",
        engine.product.name(),
        engine.version,
        engine.api_version,
        engine.host
    );
    crate::model::printable(&line).into_owned()
}

/// `name` cut to at most `max` characters by taking out its middle, where names
/// differ least (`nightly-bui…container-7`).
pub(crate) fn shorten(name: &str, max: usize) -> String {
    let count = name.chars().count();
    if count <= max {
        return name.to_string();
    }
    if max <= 1 {
        return "…".chars().take(max).collect();
    }
    let head = (max - 1) / 2;
    let tail = max - 1 - head;
    let start: String = name.chars().take(head).collect();
    let end: String = name.chars().skip(count - tail).collect();
    format!("{start}…{end}")
}

/// `text` cut at its end to at most `max` characters.
pub(crate) fn cut_end(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let kept: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// `text` in lines of at most `width` characters, broken at spaces (a word
/// longer than the width stands alone); one line when there is no width (a
/// pipe or a file: nothing is cut or broken there).
pub(crate) fn wrap(text: &str, width: Option<usize>) -> Vec<String> {
    let Some(width) = width.filter(|width| *width > 0) else {
        return vec![text.to_string()];
    };
    let measure = dialoguer::console::measure_text_width;
    if measure(text) <= width {
        return vec![text.to_string()];
    }
    // Continuation lines keep the first line's indent.
    let body = text.trim_start_matches(' ');
    let indent = &text[..text.len() - body.len()];
    let mut lines = Vec::new();
    let mut line = indent.to_string();
    for word in body.split(' ').filter(|word| !word.is_empty()) {
        let started = line.len() > indent.len();
        let needed = measure(&line) + usize::from(started) + measure(word);
        if started && needed > width {
            lines.push(std::mem::replace(&mut line, indent.to_string()));
        }
        if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

/// What `write` writes, each line broken at spaces to fit `width` ([`wrap`]):
/// footnotes and notes on a terminal; unchanged in a pipe or a file.
pub(crate) fn wrapped(
    out: &mut impl Write,
    width: Option<usize>,
    write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
) -> io::Result<()> {
    let mut buffer = Vec::new();
    write(&mut buffer)?;
    for line in String::from_utf8_lossy(&buffer).lines() {
        for piece in wrap(line, width) {
            writeln!(out, "{piece}")?;
        }
    }
    Ok(())
}

/// Bold, when colour is on.
pub(crate) fn bold(text: &str, color: bool) -> String {
    dialoguer::console::style(text)
        .bold()
        .force_styling(color)
        .to_string()
}

pub(crate) fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

pub(super) fn unix_to_rfc3339(now: i64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0)))
}

/// "+1.2 MB" / "-3 kB": a signed change in bytes.
pub(super) fn change(before: u64, after: u64) -> String {
    if after >= before {
        format!("+{}", bytes(after - before))
    } else {
        format!("-{}", bytes(before - after))
    }
}

pub(super) fn maybe_bytes(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_string(), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_lines_that_fit_and_indents_the_rest() {
        assert_eq!(wrap("    COUNT  SIZE", Some(20)), ["    COUNT  SIZE"]);
        assert_eq!(wrap("  one two three", Some(9)), ["  one two", "  three"]);
        assert_eq!(wrap("a very long line", None), ["a very long line"]);
        assert_eq!(
            wrap("unbreakable-word x", Some(5)),
            ["unbreakable-word", "x"]
        );
    }
}
