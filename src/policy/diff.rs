//! Line diff between two policy versions, so that people can see the changed part (PIPL Art 17).
//!
//! A longest-common-subsequence diff after trimming the common head and tail; policies are a few
//! hundred lines, so the quadratic table stays small. Bodies too large for it are compared as
//! one replaced block rather than refused.

use poem_openapi::{Enum, Object};

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

/// Largest table (lines × lines) computed exactly.
const MAX_CELLS: usize = 16_000_000;

/// The lines of `from` and `to`, each marked equal, deleted or inserted.
pub fn lines(from: &str, to: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = from.lines().collect();
    let b: Vec<&str> = to.lines().collect();
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (mid_a, mid_b) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);

    let line = |op, text: &&str| DiffLine {
        op,
        text: text.to_string(),
    };
    let mut out: Vec<DiffLine> = a[..head].iter().map(|t| line(LineOp::Equal, t)).collect();
    if mid_a.len().saturating_mul(mid_b.len()) > MAX_CELLS {
        out.extend(mid_a.iter().map(|t| line(LineOp::Delete, t)));
        out.extend(mid_b.iter().map(|t| line(LineOp::Insert, t)));
    } else {
        out.extend(lcs_diff(mid_a, mid_b));
    }
    out.extend(a[a.len() - tail..].iter().map(|t| line(LineOp::Equal, t)));
    out
}

fn lcs_diff(a: &[&str], b: &[&str]) -> Vec<DiffLine> {
    let (n, m) = (a.len(), b.len());
    // suffix[i][j] = length of the LCS of a[i..] and b[j..]
    let mut suffix = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            suffix[at(i, j)] = if a[i] == b[j] {
                suffix[at(i + 1, j + 1)] + 1
            } else {
                suffix[at(i + 1, j)].max(suffix[at(i, j + 1)])
            };
        }
    }
    let mut out = Vec::with_capacity(n + m);
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(DiffLine {
                op: LineOp::Equal,
                text: a[i].to_string(),
            });
            i += 1;
            j += 1;
        } else if j < m && (i == n || suffix[at(i, j + 1)] >= suffix[at(i + 1, j)]) {
            out.push(DiffLine {
                op: LineOp::Insert,
                text: b[j].to_string(),
            });
            j += 1;
        } else {
            out.push(DiffLine {
                op: LineOp::Delete,
                text: a[i].to_string(),
            });
            i += 1;
        }
    }
    out
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
}
