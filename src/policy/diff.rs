//! Line diff between two policy versions, so that people can see the changed part (PIPL Art 17).
//!
//! The `similar` crate's Myers diff with a deadline: a pair of texts that would take long to
//! compare exactly gets a coarser diff (more lines marked changed, never a wrong one) once the
//! deadline passes. Bodies are bounded by [`super::document::MAX_BODY_BYTES`], and the public
//! routes that diff are rate-limited, so one caller cannot tie up the service.

use std::time::{Duration, Instant};

use poem_openapi::{Enum, Object};
use similar::{Algorithm, ChangeTag, TextDiff};

/// What happened to a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum LineOp {
    Equal,
    Delete,
    Insert,
}

/// One line of the diff.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct DiffLine {
    pub op: LineOp,
    pub text: String,
}

/// The longest an exact comparison may take before the diff settles for a coarser answer.
const DEADLINE: Duration = Duration::from_millis(100);

/// The lines of `from` and `to`, each marked equal, deleted or inserted. The work runs on the
/// blocking pool, off the threads that serve requests.
pub async fn lines(from: &str, to: &str) -> Vec<DiffLine> {
    let (from, to) = (from.to_string(), to.to_string());
    tokio::task::spawn_blocking(move || compare(&from, &to, DEADLINE))
        .await
        .expect("the diff does not panic")
}

fn compare(from: &str, to: &str, deadline: Duration) -> Vec<DiffLine> {
    let diff = TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .deadline(Instant::now() + deadline)
        .diff_lines(from, to);
    diff.iter_all_changes()
        .map(|change| DiffLine {
            op: match change.tag() {
                ChangeTag::Equal => LineOp::Equal,
                ChangeTag::Delete => LineOp::Delete,
                ChangeTag::Insert => LineOp::Insert,
            },
            text: change.value().trim_end_matches(['\n', '\r']).to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(diff: &[DiffLine]) -> String {
        diff.iter()
            .map(|l| {
                let sign = match l.op {
                    LineOp::Equal => ' ',
                    LineOp::Delete => '-',
                    LineOp::Insert => '+',
                };
                format!("{sign}{}\n", l.text)
            })
            .collect()
    }

    fn lines(from: &str, to: &str) -> Vec<DiffLine> {
        compare(from, to, DEADLINE)
    }

    /// The side a diff describes: the lines it keeps, and the deleted or the inserted ones.
    fn side(diff: &[DiffLine], other: LineOp) -> Vec<&str> {
        diff.iter()
            .filter(|l| l.op != other)
            .map(|l| l.text.as_str())
            .collect()
    }

    #[test]
    fn changed_lines_are_marked() {
        let diff = lines("a\nb\nc\nd\n", "a\nc\nx\nd\n");
        assert_eq!(render(&diff), " a\n-b\n c\n+x\n d\n");
    }

    #[test]
    fn identical_texts_are_all_equal() {
        let diff = lines("a\nb\n", "a\nb\n");
        assert!(diff.iter().all(|l| l.op == LineOp::Equal));
        assert_eq!(diff.len(), 2);
    }

    #[test]
    fn empty_sides_are_pure_inserts_or_deletes() {
        assert_eq!(render(&lines("", "x\ny")), "+x\n+y\n");
        assert_eq!(render(&lines("x", "")), "-x\n");
    }

    /// Past its deadline the diff is coarser but still describes both texts exactly.
    #[test]
    fn a_diff_cut_short_by_its_deadline_is_still_right() {
        let from: String = (0..20_000)
            .map(|i| format!("line {}\n", i * 7 % 1_000))
            .collect();
        let to: String = (0..20_000)
            .map(|i| format!("line {}\n", i * 11 % 1_000))
            .collect();
        for deadline in [Duration::ZERO, DEADLINE] {
            let diff = compare(&from, &to, deadline);
            assert_eq!(
                side(&diff, LineOp::Insert),
                from.lines().collect::<Vec<_>>()
            );
            assert_eq!(side(&diff, LineOp::Delete), to.lines().collect::<Vec<_>>());
        }
    }
}
