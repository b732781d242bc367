//! CSV that people open in spreadsheets (export packages, the record of processing): written with
//! the `csv` crate, and any cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, and
//! the tab and carriage return that some read the same way) prefixed with `'`, since cells hold
//! what people and the main app typed.

use std::borrow::Cow;

/// The cell as a spreadsheet will show it, never run it.
pub fn safe(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_shown_not_run() {
        assert_eq!(
            safe("=HYPERLINK(\"http://evil\")"),
            "'=HYPERLINK(\"http://evil\")"
        );
        assert_eq!(safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(safe("-2+3"), "'-2+3");
        assert_eq!(safe("Northwind"), "Northwind");
    }
}
