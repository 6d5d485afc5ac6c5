//! One way to lay out a table: every column as wide as its widest cell (or
//! header), two spaces between columns, no trailing spaces. On a terminal one
//! column may be named flexible: it gives up characters (cut in the middle)
//! until the table fits; in a pipe or a file nothing is cut.

use std::io::{self, Write};

use super::text::shorten;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

#[derive(Debug, Clone)]
pub(crate) struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
    flexible: Option<usize>,
}

const GAP: &str = "  ";

fn width_of(text: &str) -> usize {
    dialoguer::console::measure_text_width(text)
}

impl Table {
    pub(crate) fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            headers: columns
                .iter()
                .map(|(name, _)| (*name).to_string())
                .collect(),
            align: columns.iter().map(|(_, align)| *align).collect(),
            rows: Vec::new(),
            flexible: None,
        }
    }

    /// The column cut (in the middle) to fit a terminal's width.
    pub(crate) fn flexible(mut self, column: usize) -> Table {
        self.flexible = Some(column);
        self
    }

    /// Cells beyond the headers' count are dropped; missing ones are empty.
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The column widths, the flexible one narrowed to fit `width`.
    fn widths(&self, width: Option<usize>) -> Vec<usize> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width_of(h)).collect();
        for row in &self.rows {
            for (column, cell) in row.iter().enumerate().take(widths.len()) {
                widths[column] = widths[column].max(width_of(cell));
            }
        }
        if let (Some(width), Some(flex)) = (width, self.flexible)
            && flex < widths.len()
        {
            let total: usize = widths.iter().sum::<usize>() + GAP.len() * (widths.len() - 1);
            if total > width {
                let floor = width_of(&self.headers[flex]).max(12);
                widths[flex] = widths[flex]
                    .saturating_sub(total - width)
                    .max(floor.min(widths[flex]));
            }
        }
        widths
    }

    pub(crate) fn write(&self, out: &mut impl Write, width: Option<usize>) -> io::Result<()> {
        let widths = self.widths(width);
        let line = |cells: &[String]| {
            let mut line = String::new();
            for (column, width) in widths.iter().enumerate() {
                let cell = cells.get(column).map_or("", String::as_str);
                let cell = if width_of(cell) > *width {
                    shorten(cell, *width)
                } else {
                    cell.to_string()
                };
                let pad = " ".repeat(width - width_of(&cell));
                if column > 0 {
                    line.push_str(GAP);
                }
                match self.align[column] {
                    Align::Left => {
                        line.push_str(&cell);
                        line.push_str(&pad);
                    }
                    Align::Right => {
                        line.push_str(&pad);
                        line.push_str(&cell);
                    }
                }
            }
            line.trim_end().to_string()
        };
        writeln!(out, "{}", line(&self.headers))?;
        for row in &self.rows {
            writeln!(out, "{}", line(row))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(table: &Table, width: Option<usize>) -> String {
        let mut out = Vec::new();
        table.write(&mut out, width).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn columns_align_and_only_the_flexible_one_is_cut_to_fit() {
        let mut table = Table::new(&[("NAME", Align::Left), ("SIZE", Align::Right)]).flexible(0);
        table.row(vec!["a-rather-long-container-name-1".into(), "1 kB".into()]);
        table.row(vec!["b".into(), "100.5 MB".into()]);
        assert_eq!(
            text(&table, None),
            "NAME                                SIZE\n\
             a-rather-long-container-name-1      1 kB\n\
             b                               100.5 MB\n"
        );
        let narrow = text(&table, Some(24));
        for line in narrow.lines() {
            assert!(line.chars().count() <= 24, "{line}");
        }
        assert!(narrow.contains("a-rath…-name-1      1 kB"), "{narrow}");
    }
}
