//! The layout the README describes stays true: no circle between the files
//! of `src/` (a file that uses another never is used back by it, directly or
//! through others), so that each stage can be read from the one it uses.
//!
//! A file's dependencies are the `crate::…` and `super::…` paths it names and
//! the child modules it declares and names, outside its unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, with its module path (`plan::build`).
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        if path.is_dir() {
            let mut inner = prefix.to_vec();
            inner.push(name);
            modules(&path, &inner, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let mut module = prefix.to_vec();
            if !matches!(name.as_str(), "mod" | "lib" | "main") {
                module.push(name);
            }
            out.insert(module, path);
        }
    }
}

/// The file that holds the item at `path`: its longest prefix that is a module.
fn file_of<'a>(
    files: &'a BTreeMap<Vec<String>, PathBuf>,
    path: &[String],
) -> Option<&'a Vec<String>> {
    (0..=path.len())
        .rev()
        .find_map(|n| files.get_key_value(&path[..n]).map(|(key, _)| key))
}

/// The source without its unit tests (the `mod tests` after a
/// `#[cfg(test)]`, always last in the file) and without comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let tests = text.match_indices("#[cfg(test)]").find_map(|(at, _)| {
        let after = &text[at..];
        let next = after
            .lines()
            .skip(1)
            .find(|line| !line.trim_start().starts_with("#["))?;
        let next = next.trim().trim_start_matches("pub(crate) ");
        next.starts_with("mod tests").then_some(at)
    });
    let text = match tests {
        Some(at) => &text[..at],
        None => &text,
    };
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn identifiers(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| !word.is_empty())
        .collect()
}

fn dependencies(
    files: &BTreeMap<Vec<String>, PathBuf>,
) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut edges = BTreeMap::new();
    for (module, path) in files {
        let text = code(path);
        let mut uses = BTreeSet::new();
        let children: Vec<&str> = text
            .lines()
            .filter_map(|line| {
                let line = line.trim().trim_start_matches("pub(crate) ");
                line.strip_prefix("mod ")?.strip_suffix(';')
            })
            .collect();
        // `use crate::{a, b}` and `use super::{a, b}`: each name is a path.
        let mut paths: Vec<Vec<String>> = Vec::new();
        for (head, rest) in text
            .match_indices("use crate::{")
            .map(|(at, _)| ("crate", &text[at + 12..]))
            .chain(
                text.match_indices("use super::{")
                    .map(|(at, _)| ("super", &text[at + 12..])),
            )
        {
            let group = &rest[..rest.find('}').unwrap_or(0)];
            for name in group.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let name = name.split("::").next().unwrap_or(name);
                paths.push(vec![head.to_string(), name.to_string()]);
            }
        }
        for word in identifiers(&text) {
            // `plan::{a, b}` names the module `plan`: its trailing `::` counts.
            let is_path = word.contains("::");
            let parts: Vec<String> = word
                .split("::")
                .filter(|part| !part.is_empty())
                .map(str::to_string)
                .collect();
            // A bare `crate::` or `super::` (before a `{…}` group, read
            // above) names no file of its own.
            if is_path
                && !parts.is_empty()
                && !(parts.len() == 1 && (parts[0] == "crate" || parts[0] == "super"))
                && (parts[0] == "crate"
                    || parts[0] == "super"
                    || children.contains(&parts[0].as_str()))
            {
                paths.push(parts);
            }
        }
        for parts in paths {
            let target: Vec<String> = match parts[0].as_str() {
                "crate" => parts[1..].to_vec(),
                "super" => {
                    let ups = parts.iter().take_while(|part| *part == "super").count();
                    let mut base = module[..module.len().saturating_sub(ups)].to_vec();
                    base.extend(parts[ups..].iter().cloned());
                    base
                }
                _ => {
                    let mut base = module.clone();
                    base.extend(parts.iter().cloned());
                    base
                }
            };
            if let Some(file) = file_of(files, &target)
                && file != module
            {
                uses.insert(file.clone());
            }
        }
        edges.insert(module.clone(), uses);
    }
    edges
}

/// A circle through `start`, if there is one.
fn circle_from(
    edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    start: &Vec<String>,
) -> Option<Vec<Vec<String>>> {
    let mut stack = vec![(start.clone(), vec![start.clone()])];
    let mut seen = BTreeSet::new();
    while let Some((at, trail)) = stack.pop() {
        for next in &edges[&at] {
            if next == start {
                return Some(trail);
            }
            if seen.insert(next.clone()) {
                let mut longer = trail.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_circle_between_files() {
    let mut files = BTreeMap::new();
    modules(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &[],
        &mut files,
    );
    let edges = dependencies(&files);
    assert!(
        edges.values().map(BTreeSet::len).sum::<usize>() > 100,
        "the dependency reader found almost nothing: {edges:?}"
    );
    for module in files.keys() {
        if let Some(circle) = circle_from(&edges, module) {
            let names: Vec<String> = circle.iter().map(|m| m.join("::")).collect();
            panic!(
                "files in a circle: {} -> back to {}",
                names.join(" -> "),
                names[0]
            );
        }
    }
}
