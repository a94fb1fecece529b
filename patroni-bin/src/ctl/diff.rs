//! Unified diffs of the configuration text, as `edit-config` shows them (Python's
//! `difflib.unified_diff` with empty file names and three lines of context).

/// The edit script between two line lists: `(' ' | '-' | '+', line)`.
fn script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(char, &'a str)> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(('+', b[j]));
            j += 1;
        } else {
            out.push(('-', a[i]));
            i += 1;
        }
    }
    // Python lists a hunk's deletions before its insertions.
    let mut k = 0;
    while k < out.len() {
        if out[k].0 == ' ' {
            k += 1;
            continue;
        }
        let start = k;
        while k < out.len() && out[k].0 != ' ' {
            k += 1;
        }
        out[start..k].sort_by_key(|(c, _)| if *c == '-' { 0 } else { 1 });
    }
    out
}

fn range(start: usize, len: usize) -> String {
    let beginning = if len == 0 { start } else { start + 1 };
    if len == 1 {
        format!("{beginning}")
    } else {
        format!("{beginning},{len}")
    }
}

/// The lines of a unified diff from `before` to `after` (empty when they are equal).
pub fn unified(before: &str, after: &str) -> Vec<String> {
    let a: Vec<&str> = before.trim_end_matches('\n').split('\n').collect();
    let b: Vec<&str> = after.trim_end_matches('\n').split('\n').collect();
    let ops = script(&a, &b);
    if ops.iter().all(|(c, _)| *c == ' ') {
        return Vec::new();
    }
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, (c, _))| *c != ' ')
        .map(|(i, _)| i)
        .collect();
    // Group changes whose context overlaps into hunks of op indices.
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for &i in &changed {
        let lo = i.saturating_sub(CONTEXT);
        let hi = (i + CONTEXT + 1).min(ops.len());
        match hunks.last_mut() {
            Some((_, end)) if lo <= *end => *end = hi,
            _ => hunks.push((lo, hi)),
        }
    }
    let mut out = vec!["--- ".to_string(), "+++ ".to_string()];
    for (lo, hi) in hunks {
        let a_start = ops[..lo].iter().filter(|(c, _)| *c != '+').count();
        let b_start = ops[..lo].iter().filter(|(c, _)| *c != '-').count();
        let a_len = ops[lo..hi].iter().filter(|(c, _)| *c != '+').count();
        let b_len = ops[lo..hi].iter().filter(|(c, _)| *c != '-').count();
        out.push(format!(
            "@@ -{} +{} @@",
            range(a_start, a_len),
            range(b_start, b_len)
        ));
        for (c, line) in &ops[lo..hi] {
            out.push(format!("{c}{line}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_difflib() {
        let before = "a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: 6\ng: 7\nh: 8\n";
        let after = "a: 1\nb: 2\nc: 3\nd: 40\ne: 5\nf: 6\ng: 7\nh: 8\ni: 9\n";
        // `difflib.unified_diff` of the same lines.
        assert_eq!(
            unified(before, after),
            vec![
                "--- ",
                "+++ ",
                "@@ -1,8 +1,9 @@",
                " a: 1",
                " b: 2",
                " c: 3",
                "-d: 4",
                "+d: 40",
                " e: 5",
                " f: 6",
                " g: 7",
                " h: 8",
                "+i: 9"
            ]
        );
        assert!(unified(before, before).is_empty());
        let long_a: String = (0..20).map(|i| format!("k{i}: {i}\n")).collect();
        let long_b = long_a
            .replace("k2: 2", "k2: x")
            .replace("k17: 17", "k17: y");
        let d = unified(&long_a, &long_b);
        assert_eq!(d[2], "@@ -1,6 +1,6 @@");
        assert!(d.contains(&"@@ -15,6 +15,6 @@".to_string()));
    }
}
