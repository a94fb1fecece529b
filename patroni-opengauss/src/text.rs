//! Turning raw gs_ctl output into messages: line splitting and log-prefix removal.
//!
//! gs_ctl writes everything to stdout with a `[date][pid][node][prog]: ` prefix on most lines,
//! separates progress output with `\r`, runs progress dots into the next prefixed line and prints
//! `notify` messages with no newline at all; every parser starts from [`messages`].

/// Splits output into messages: on `\n` and `\r`, and again wherever a log prefix starts mid-line.
///
/// Prefixes are removed, trailing spaces trimmed, empty pieces kept out (the layout parsers that
/// need blank lines use [`raw_lines`] instead).
pub fn messages(output: &str) -> Vec<String> {
    raw_lines(output)
        .into_iter()
        .flat_map(split_at_prefixes)
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

/// Splits output on `\n` and `\r`, trailing spaces trimmed, blank lines kept.
pub fn raw_lines(output: &str) -> Vec<&str> {
    output.split(['\n', '\r']).map(str::trim_end).collect()
}

/// Removes one leading log prefix (current or 1.0.x style), if any.
pub fn strip_prefix(line: &str) -> &str {
    if let Some(len) = bracket_prefix_len(line) {
        return &line[len..];
    }
    if let Some(len) = legacy_prefix_len(line) {
        return &line[len..];
    }
    line
}

/// Pieces of one physical line, split wherever a bracketed prefix starts (dots or a message may precede it).
fn split_at_prefixes(line: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = strip_prefix(line);
    loop {
        let next = rest
            .char_indices()
            .filter(|&(i, c)| c == '[' && bracket_prefix_len(&rest[i..]).is_some())
            .map(|(i, _)| i)
            .next();
        match next {
            Some(i) => {
                pieces.push(&rest[..i]);
                let after = &rest[i..];
                rest = &after[bracket_prefix_len(after).unwrap_or(0)..];
            }
            None => {
                pieces.push(rest);
                return pieces;
            }
        }
    }
}

/// Length of `[YYYY-MM-DD HH:MM:SS.mmm][pid][node][prog]: ` at the start of `s`.
fn bracket_prefix_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    // "[2025-03-14 11:52:00.000]" is 25 bytes.
    if b.len() < 25 || b[0] != b'[' || !is_timestamp(&b[1..24], true) || b[24] != b']' {
        return None;
    }
    let mut pos = 25;
    // [pid]: digits only.
    pos = bracketed(b, pos, |c| c.is_ascii_digit(), false)?;
    // [node] may be empty; [prog] may not.
    pos = bracketed(b, pos, |c| c != b']' && c != b'[' && c != b'\n', true)?;
    pos = bracketed(b, pos, |c| c != b']' && c != b'[' && c != b'\n', false)?;
    if b.get(pos) != Some(&b':') {
        return None;
    }
    pos += 1;
    if b.get(pos) == Some(&b' ') {
        pos += 1;
    }
    Some(pos)
}

/// Length of the 1.0.x prefix `2020-07-25 15:58:52  15481 gs_ctl: `.
fn legacy_prefix_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() < 19 || !is_timestamp(&b[..19], false) {
        return None;
    }
    let rest = &s[19..];
    let trimmed = rest.trim_start_matches(' ');
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || trimmed.len() == rest.len() {
        return None;
    }
    let after = &trimmed[digits..];
    let after = after.strip_prefix(' ')?;
    let colon = after.find(": ")?;
    if colon == 0 || after[..colon].contains(' ') {
        return None;
    }
    Some(s.len() - after.len() + colon + 2)
}

/// `YYYY-MM-DD HH:MM:SS` optionally followed by `.mmm`.
fn is_timestamp(b: &[u8], millis: bool) -> bool {
    let pattern: &[u8] = if millis {
        b"dddd-dd-dd dd:dd:dd.ddd"
    } else {
        b"dddd-dd-dd dd:dd:dd"
    };
    b.len() == pattern.len()
        && b.iter().zip(pattern).all(|(c, p)| match p {
            b'd' => c.is_ascii_digit(),
            other => c == other,
        })
}

fn bracketed(b: &[u8], pos: usize, ok: impl Fn(u8) -> bool, empty: bool) -> Option<usize> {
    if b.get(pos) != Some(&b'[') {
        return None;
    }
    let mut end = pos + 1;
    while end < b.len() && b[end] != b']' {
        if !ok(b[end]) {
            return None;
        }
        end += 1;
    }
    if end >= b.len() || (!empty && end == pos + 1) {
        return None;
    }
    Some(end + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_both_prefix_styles() {
        assert_eq!(
            strip_prefix("[2025-03-14 11:52:00.000][33550][][gs_ctl]: server stopped"),
            "server stopped"
        );
        assert_eq!(
            strip_prefix("[2025-03-14 11:52:00.000][33550][dn_6001][gs_rewind]: x"),
            "x"
        );
        assert_eq!(
            strip_prefix("2020-07-25 15:58:52  15481 gs_ctl: server started"),
            "server started"
        );
        assert_eq!(strip_prefix("no prefix: here"), "no prefix: here");
    }

    #[test]
    fn splits_run_together_messages_and_carriage_returns() {
        let out = "[2025-03-14 09:58:10.010][1][][gs_ctl]: notify primary term (2)[2025-03-14 09:58:10.011][1][][gs_ctl]: done\n..[2025-03-14 09:58:10.011][1][][gs_ctl]: x\rProgress 100% \n";
        assert_eq!(
            messages(out),
            vec![
                "notify primary term (2)",
                "done",
                "..",
                "x",
                "Progress 100%"
            ]
        );
    }
}
