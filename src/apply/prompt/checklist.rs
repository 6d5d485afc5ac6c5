//! The `--select` checklist: every planned item, checked at first, with the
//! number chosen and the bytes they free shown above the list as keys toggle
//! them. The state and its drawing are plain data ([`Checklist`]), so that
//! keys and screens are tested without a terminal; [`run`] draws it on one.

use dialoguer::console::{Key, Term};

use crate::plan::{Item, Plan};
use crate::render::{bytes, cut_end};

/// What a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Still choosing: draw again.
    Choosing,
    /// Enter: apply the chosen items (indices into the plan).
    Apply(Vec<usize>),
    /// Esc, `q`, Ctrl-C, Ctrl-D: nothing is removed.
    Abort,
}

/// The items, which are checked, and where the cursor is.
#[derive(Debug, Clone)]
pub(crate) struct Checklist {
    labels: Vec<String>,
    sizes: Vec<u64>,
    checked: Vec<bool>,
    cursor: usize,
    /// The first item shown, when they do not all fit.
    top: usize,
}

/// The keys, as the line below the list says them.
const KEYS: &str = "space toggles · a all · n none · enter applies · esc aborts";

impl Checklist {
    pub(crate) fn new(items: &[Item]) -> Checklist {
        Checklist {
            labels: items.iter().map(crate::plan::Item::label).collect(),
            sizes: items.iter().map(|item| item.predicted_bytes).collect(),
            checked: vec![true; items.len()],
            cursor: 0,
            top: 0,
        }
    }

    /// The chosen items' indices.
    pub(crate) fn chosen(&self) -> Vec<usize> {
        (0..self.checked.len())
            .filter(|index| self.checked[*index])
            .collect()
    }

    /// How many are chosen, and the bytes they are predicted to free.
    pub(crate) fn total(&self) -> (usize, u64) {
        self.chosen()
            .into_iter()
            .fold((0, 0), |(count, sum), index| {
                (count + 1, sum + self.sizes[index])
            })
    }

    /// The line that sums the choice up, shown above the list and after it.
    pub(crate) fn summary(&self) -> String {
        let (count, sum) = self.total();
        format!(
            "{count} of {} chosen, about {} to free",
            self.checked.len(),
            bytes(sum)
        )
    }

    pub(crate) fn key(&mut self, key: Key) -> Step {
        let last = self.checked.len().saturating_sub(1);
        match key {
            Key::ArrowUp | Key::Char('k') => self.cursor = self.cursor.saturating_sub(1),
            Key::ArrowDown | Key::Char('j') => self.cursor = (self.cursor + 1).min(last),
            Key::PageUp => self.cursor = self.cursor.saturating_sub(10),
            Key::PageDown => self.cursor = (self.cursor + 10).min(last),
            Key::Home => self.cursor = 0,
            Key::End => self.cursor = last,
            Key::Char(' ') => {
                if let Some(checked) = self.checked.get_mut(self.cursor) {
                    *checked = !*checked;
                }
            }
            Key::Char('a') => self.checked.iter_mut().for_each(|c| *c = true),
            Key::Char('n') => self.checked.iter_mut().for_each(|c| *c = false),
            Key::Enter => return Step::Apply(self.chosen()),
            Key::Escape | Key::CtrlC | Key::Char('q' | '\u{4}') => return Step::Abort,
            _ => {}
        }
        Step::Choosing
    }

    /// The screen: the summary, at most `height - 2` items around the cursor,
    /// and the keys; each line cut to `width` columns.
    pub(crate) fn lines(&mut self, width: usize, height: usize) -> Vec<String> {
        let rows = height.saturating_sub(2).max(1);
        if self.cursor < self.top {
            self.top = self.cursor;
        } else if self.cursor >= self.top + rows {
            self.top = self.cursor + 1 - rows;
        }
        let mut lines = vec![self.summary()];
        let end = (self.top + rows).min(self.labels.len());
        for index in self.top..end {
            let pointer = if index == self.cursor { '>' } else { ' ' };
            let mark = if self.checked[index] { 'x' } else { ' ' };
            lines.push(format!(
                "{pointer} [{mark}] {:>10}  {}",
                bytes(self.sizes[index]),
                self.labels[index]
            ));
        }
        let hidden = self.labels.len() - (end - self.top);
        lines.push(if hidden > 0 {
            format!("  ({hidden} more: arrows scroll) {KEYS}")
        } else {
            format!("  {KEYS}")
        });
        lines
            .into_iter()
            .map(|line| cut_end(&line, width.max(20)))
            .collect()
    }
}

/// Runs the checklist on `term` until Enter or an abort; then leaves the
/// summary line in its place. End of input or a read error aborts.
pub(crate) fn run(term: &Term, plan: &Plan) -> std::io::Result<Option<Vec<usize>>> {
    let mut list = Checklist::new(&plan.items);
    let mut drawn = 0;
    let _ = term.hide_cursor();
    let outcome = loop {
        let (rows, columns) = term.size();
        let lines = list.lines(usize::from(columns), usize::from(rows).saturating_sub(1));
        term.clear_last_lines(drawn)?;
        for line in &lines {
            term.write_line(line)?;
        }
        drawn = lines.len();
        let key = match super::terminal::read_key(term) {
            Ok(Some(key)) => key,
            Ok(None) => break None,
            Err(err) => {
                let _ = term.show_cursor();
                return Err(err);
            }
        };
        match list.key(key) {
            Step::Choosing => {}
            Step::Apply(chosen) => break Some(chosen),
            Step::Abort => break None,
        }
    };
    term.clear_last_lines(drawn)?;
    let _ = term.show_cursor();
    match &outcome {
        Some(_) => term.write_line(&format!("{}.", list.summary()))?,
        None => term.write_line("Selection aborted.")?,
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Kind, Reason};

    fn items() -> Vec<Item> {
        let item = |id: &str, bytes: u64| Item {
            predicted_bytes: bytes,
            ..Item::new(Kind::Container, id.repeat(12), id, Reason::Exited)
        };
        vec![item("a", 1000), item("b", 2000), item("c", 4000)]
    }

    #[test]
    fn the_total_follows_each_toggle() {
        let mut list = Checklist::new(&items());
        assert_eq!(list.total(), (3, 7000));
        assert_eq!(list.summary(), "3 of 3 chosen, about 7 kB to free");
        list.key(Key::ArrowDown);
        list.key(Key::Char(' '));
        assert_eq!(list.total(), (2, 5000));
        list.key(Key::Char('n'));
        assert_eq!(list.total(), (0, 0));
        list.key(Key::End);
        list.key(Key::Char(' '));
        assert_eq!(list.key(Key::Enter), Step::Apply(vec![2]));
        assert_eq!(list.key(Key::Escape), Step::Abort);
        assert_eq!(list.key(Key::Char('q')), Step::Abort);
    }

    #[test]
    fn the_screen_shows_the_total_and_scrolls_to_the_cursor() {
        let mut list = Checklist::new(&items());
        let screen = list.lines(80, 10);
        assert_eq!(screen[0], "3 of 3 chosen, about 7 kB to free");
        assert_eq!(screen[1], "> [x]       1 kB  container aaaaaaaaaaaa (a)");
        assert_eq!(screen[2], "  [x]       2 kB  container bbbbbbbbbbbb (b)");
        assert!(screen[4].contains("enter applies"), "{screen:?}");
        // Three rows for the list would fit one item: the cursor's.
        list.key(Key::End);
        list.key(Key::Char(' '));
        let screen = list.lines(80, 3);
        assert_eq!(screen.len(), 3);
        assert_eq!(screen[1], "> [ ]       4 kB  container cccccccccccc (c)");
        assert!(screen[2].contains("2 more"), "{screen:?}");
        // Every line fits the width.
        for line in list.lines(30, 10) {
            assert!(line.chars().count() <= 30, "{line}");
        }
    }
}
