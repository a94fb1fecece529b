//! YAML as Python Patroni's `patronictl` prints it: PyYAML's `safe_dump` with sorted keys, block
//! style (flow style for the `Tags` cell of `list -f tsv`), a width of 200 and YAML 1.1 quoting,
//! so `show-config` and `edit-config` output reads back to the same values in either tool
//! (`'on'` stays a string, not a boolean).

use serde_json::{Map, Number, Value};

/// The column after which PyYAML breaks a plain or single-quoted scalar at a space.
const WIDTH: usize = 200;

/// `value` in block style, as `yaml.safe_dump(value, default_flow_style=False, width=200)`.
pub fn dump(value: &Value) -> String {
    let mut e = Emitter::default();
    match value {
        Value::Object(m) if !m.is_empty() => e.mapping(m, 0),
        Value::Array(a) if !a.is_empty() => e.sequence(a, 0),
        other => {
            let text = e.flow(other);
            e.push(&text);
        }
    }
    e.line_end();
    e.out
}

/// `value` in flow style (`{a: 1, b: [x, y]}`), as `safe_dump(..., default_flow_style=True)`.
pub fn dump_flow(value: &Value) -> String {
    let mut e = Emitter::default();
    let text = e.flow(value);
    e.push(&text);
    e.line_end();
    e.out
}

/// Which resolver of PyYAML's YAML 1.1 implicit resolvers a plain scalar would match.
fn resolves_to_non_string(s: &str) -> bool {
    is_bool(s) || is_null(s) || is_int(s) || is_float(s) || is_timestamp(s) || s == "<<" || s == "="
}

fn is_bool(s: &str) -> bool {
    matches!(
        s,
        "yes"
            | "Yes"
            | "YES"
            | "no"
            | "No"
            | "NO"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
}

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

fn strip_sign(s: &str) -> &str {
    s.strip_prefix(['-', '+']).unwrap_or(s)
}

fn all(s: &str, f: impl Fn(char) -> bool) -> bool {
    s.chars().all(f)
}

/// `[1-9][0-9_]*(:[0-5]?[0-9])+`: YAML 1.1 base 60.
fn is_sexagesimal(s: &str) -> bool {
    let mut parts = s.split(':');
    let head = parts.next().unwrap_or("");
    let mut rest = parts.peekable();
    if rest.peek().is_none() {
        return false;
    }
    let head_ok = head.starts_with(|c: char| ('1'..='9').contains(&c))
        && all(head, |c| c.is_ascii_digit() || c == '_');
    head_ok && rest.all(is_base60_digit)
}

/// `[0-5]?[0-9]`: one place of a base-60 number after its head.
fn is_base60_digit(p: &str) -> bool {
    let b = p.as_bytes();
    match b.len() {
        1 => b[0].is_ascii_digit(),
        2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
        _ => false,
    }
}

fn is_int(s: &str) -> bool {
    let u = strip_sign(s);
    if let Some(b) = u.strip_prefix("0b") {
        return !b.is_empty() && all(b, |c| matches!(c, '0' | '1' | '_'));
    }
    if let Some(h) = u.strip_prefix("0x") {
        return !h.is_empty() && all(h, |c| c.is_ascii_hexdigit() || c == '_');
    }
    if u == "0" {
        return true;
    }
    if let Some(o) = u.strip_prefix('0') {
        return !o.is_empty() && all(o, |c| ('0'..='7').contains(&c) || c == '_');
    }
    if u.starts_with(|c: char| ('1'..='9').contains(&c))
        && all(u, |c| c.is_ascii_digit() || c == '_')
    {
        return true;
    }
    is_sexagesimal(u)
}

/// `[eE][-+][0-9]+`, or nothing.
fn exponent_ok(e: &str) -> bool {
    if e.is_empty() {
        return true;
    }
    let Some(rest) = e.strip_prefix(['e', 'E']) else {
        return false;
    };
    let Some(digits) = rest.strip_prefix(['-', '+']) else {
        return false;
    };
    !digits.is_empty() && all(digits, |c| c.is_ascii_digit())
}

fn is_float(s: &str) -> bool {
    if matches!(s, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let u = strip_sign(s);
    if matches!(u, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    // `\.[0-9][0-9_]*` exponent, unsigned only.
    if let Some(frac) = s.strip_prefix('.') {
        let digits = frac
            .find(|c: char| !(c.is_ascii_digit() || c == '_'))
            .unwrap_or(frac.len());
        return frac.starts_with(|c: char| c.is_ascii_digit()) && exponent_ok(&frac[digits..]);
    }
    let Some((int, frac)) = u.split_once('.') else {
        return false;
    };
    let frac_digits = frac
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(frac.len());
    let plain_int = int.starts_with(|c: char| c.is_ascii_digit())
        && all(int, |c| c.is_ascii_digit() || c == '_');
    if plain_int && exponent_ok(&frac[frac_digits..]) {
        return true;
    }
    // `[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*`
    frac_digits == frac.len() && int.contains(':') && is_sexagesimal_float_head(int)
}

fn is_sexagesimal_float_head(s: &str) -> bool {
    let mut parts = s.split(':');
    let head = parts.next().unwrap_or("");
    head.starts_with(|c: char| c.is_ascii_digit())
        && all(head, |c| c.is_ascii_digit() || c == '_')
        && parts.all(is_base60_digit)
}

fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    // `YYYY-MM-DD` alone.
    if b.len() == 10 && (0..4).all(digit) && b[4] == b'-' && digit(5) && digit(6) && b[7] == b'-' {
        return digit(8) && digit(9);
    }
    // `YYYY-M[M]-D[D]` then `T` or blanks, `H[H]:MM:SS[.frac]` and an optional zone.
    if b.len() < 5 || !(0..4).all(digit) || b[4] != b'-' {
        return false;
    }
    let mut i = 5;
    let take_1_2 = |i: &mut usize| -> bool {
        if !digit(*i) {
            return false;
        }
        *i += 1;
        if digit(*i) {
            *i += 1;
        }
        true
    };
    let take_2 = |i: &mut usize| -> bool {
        let ok = digit(*i) && digit(*i + 1);
        *i += 2;
        ok
    };
    if !take_1_2(&mut i) || b.get(i) != Some(&b'-') {
        return false;
    }
    i += 1;
    if !take_1_2(&mut i) {
        return false;
    }
    match b.get(i) {
        Some(b'T' | b't') => i += 1,
        Some(b' ' | b'\t') => {
            while matches!(b.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
        }
        _ => return false,
    }
    if !take_1_2(&mut i) || b.get(i) != Some(&b':') {
        return false;
    }
    i += 1;
    if !take_2(&mut i) || b.get(i) != Some(&b':') {
        return false;
    }
    i += 1;
    if !take_2(&mut i) {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while digit(i) {
            i += 1;
        }
    }
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    match b.get(i) {
        None => return true,
        Some(b'Z') => return i + 1 == b.len(),
        Some(b'-' | b'+') => i += 1,
        _ => return false,
    }
    if !take_1_2(&mut i) {
        return false;
    }
    if b.get(i) == Some(&b':') {
        i += 1;
        if !take_2(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// What PyYAML's `analyze_scalar` allows for a string.
#[derive(Debug, Clone, Copy)]
struct Analysis {
    empty: bool,
    multiline: bool,
    flow_plain: bool,
    block_plain: bool,
    single_quoted: bool,
}

fn is_blank(c: Option<char>) -> bool {
    matches!(
        c,
        None | Some('\0' | ' ' | '\t' | '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
    )
}

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            empty: true,
            multiline: false,
            flow_plain: false,
            block_plain: true,
            single_quoted: true,
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let (mut block_ind, mut flow_ind, mut line_breaks, mut special) = (false, false, false, false);
    let (mut lead_space, mut lead_break, mut trail_space, mut trail_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    if s.starts_with("---") || s.starts_with("...") {
        block_ind = true;
        flow_ind = true;
    }
    let mut preceded_ws = true;
    let mut followed_ws = n == 1 || is_blank(chars.get(1).copied());
    let (mut prev_space, mut prev_break) = (false, false);
    for (i, &ch) in chars.iter().enumerate() {
        if i == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(ch) {
                flow_ind = true;
                block_ind = true;
            }
            if ch == '?' || ch == ':' {
                flow_ind = true;
                if followed_ws {
                    block_ind = true;
                }
            }
            if ch == '-' && followed_ws {
                flow_ind = true;
                block_ind = true;
            }
        } else {
            if ",?[]{}".contains(ch) {
                flow_ind = true;
            }
            if ch == ':' {
                flow_ind = true;
                if followed_ws {
                    block_ind = true;
                }
            }
            if ch == '#' && preceded_ws {
                flow_ind = true;
                block_ind = true;
            }
        }
        if is_break(ch) {
            line_breaks = true;
        }
        if !(ch == '\n' || (' '..='~').contains(&ch)) {
            let printable = (ch == '\u{85}'
                || ('\u{A0}'..='\u{D7FF}').contains(&ch)
                || ('\u{E000}'..='\u{FFFD}').contains(&ch)
                || ('\u{10000}'..'\u{10FFFF}').contains(&ch))
                && ch != '\u{FEFF}';
            if !printable {
                special = true;
            }
        }
        if ch == ' ' {
            if i == 0 {
                lead_space = true;
            }
            if i == n - 1 {
                trail_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break(ch) {
            if i == 0 {
                lead_break = true;
            }
            if i == n - 1 {
                trail_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_space = false;
            prev_break = true;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_ws = is_blank(Some(ch));
        followed_ws = i + 2 >= n || is_blank(chars.get(i + 2).copied());
    }
    let (mut flow_plain, mut block_plain, mut single_quoted) = (true, true, true);
    if lead_space || lead_break || trail_space || trail_break {
        flow_plain = false;
        block_plain = false;
    }
    if break_space {
        flow_plain = false;
        block_plain = false;
        single_quoted = false;
    }
    if space_break || special {
        flow_plain = false;
        block_plain = false;
        single_quoted = false;
    }
    if line_breaks {
        flow_plain = false;
        block_plain = false;
    }
    if flow_ind {
        flow_plain = false;
    }
    if block_ind {
        block_plain = false;
    }
    Analysis {
        empty: false,
        multiline: line_breaks,
        flow_plain,
        block_plain,
        single_quoted,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
}

fn choose(s: &str, flow: bool, simple_key: bool) -> Style {
    let a = analyze(s);
    if !resolves_to_non_string(s)
        && !(simple_key && (a.empty || a.multiline))
        && ((flow && a.flow_plain) || (!flow && a.block_plain))
    {
        return Style::Plain;
    }
    if a.single_quoted && !(simple_key && a.multiline) {
        return Style::Single;
    }
    Style::Double
}

/// Python's `repr(float)`: the shortest text that reads back, exponent form outside 1e-4..1e16.
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let e = format!("{f:e}");
        let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mant}e{sign}{digits:0>2}");
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

fn yaml_number(n: &Number) -> String {
    if n.is_f64() {
        let f = n.as_f64().unwrap_or(0.0);
        if f.is_nan() {
            return ".nan".into();
        }
        if f.is_infinite() {
            return if f > 0.0 { ".inf" } else { "-.inf" }.into();
        }
        let r = python_float_repr(f).to_lowercase();
        if !r.contains('.') && r.contains('e') {
            return r.replacen('e', ".0e", 1);
        }
        r
    } else {
        n.to_string()
    }
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        let esc = match ch {
            '\0' => Some('0'),
            '\u{7}' => Some('a'),
            '\u{8}' => Some('b'),
            '\t' => Some('t'),
            '\n' => Some('n'),
            '\u{B}' => Some('v'),
            '\u{C}' => Some('f'),
            '\r' => Some('r'),
            '\u{1B}' => Some('e'),
            '"' => Some('"'),
            '\\' => Some('\\'),
            '\u{85}' => Some('N'),
            '\u{A0}' => Some('_'),
            '\u{2028}' => Some('L'),
            '\u{2029}' => Some('P'),
            _ => None,
        };
        if let Some(e) = esc {
            out.push('\\');
            out.push(e);
            continue;
        }
        let printable = (' '..='~').contains(&ch)
            || (('\u{A0}'..='\u{D7FF}').contains(&ch)
                || ('\u{E000}'..='\u{FFFD}').contains(&ch)
                || ('\u{10000}'..'\u{10FFFF}').contains(&ch))
                && ch != '\u{FEFF}';
        if printable {
            out.push(ch);
        } else {
            let c = ch as u32;
            if c <= 0xFF {
                out.push_str(&format!("\\x{c:02X}"));
            } else if c <= 0xFFFF {
                out.push_str(&format!("\\u{c:04X}"));
            } else {
                out.push_str(&format!("\\U{c:08X}"));
            }
        }
    }
    out.push('"');
    out
}

/// Writes text tracking the column, as PyYAML's emitter does for line breaking.
#[derive(Default)]
struct Emitter {
    out: String,
    column: usize,
}

impl Emitter {
    fn push(&mut self, s: &str) {
        match s.rfind('\n') {
            Some(i) => self.column = s[i + 1..].chars().count(),
            None => self.column += s.chars().count(),
        }
        self.out.push_str(s);
    }

    fn newline(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    fn line_end(&mut self) {
        if !self.out.ends_with('\n') {
            self.newline();
        }
    }

    /// Pads a fresh line to `indent`; mid-line (after `- `) the item continues where it is.
    fn pad(&mut self, indent: usize) {
        if self.column == 0 {
            self.push(&" ".repeat(indent));
        }
    }

    /// A plain scalar, broken at single spaces past the width (continuation at `indent`).
    fn plain(&mut self, s: &str, indent: usize) {
        let chars: Vec<char> = s.chars().collect();
        let mut start = 0;
        let mut spaces = false;
        for end in 0..=chars.len() {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > WIDTH {
                        self.newline();
                        self.push(&" ".repeat(indent));
                    } else {
                        let seg: String = chars[start..end].iter().collect();
                        self.push(&seg);
                    }
                    start = end;
                }
            } else if ch.is_none() || ch == Some(' ') {
                let seg: String = chars[start..end].iter().collect();
                self.push(&seg);
                start = end;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
            }
        }
    }

    /// A single-quoted scalar, PyYAML's `write_single_quoted`.
    fn single(&mut self, s: &str, indent: usize) {
        self.push("'");
        let chars: Vec<char> = s.chars().collect();
        let n = chars.len();
        let (mut spaces, mut breaks) = (false, false);
        let mut start = 0;
        for end in 0..=n {
            let ch = chars.get(end).copied();
            if spaces {
                if ch != Some(' ') {
                    if start + 1 == end && self.column > WIDTH && start != 0 && end != n {
                        self.newline();
                        self.push(&" ".repeat(indent));
                    } else {
                        let seg: String = chars[start..end].iter().collect();
                        self.push(&seg);
                    }
                    start = end;
                }
            } else if breaks {
                if !ch.is_some_and(is_break) {
                    if chars[start] == '\n' {
                        self.newline();
                    }
                    for &br in &chars[start..end] {
                        if br == '\n' {
                            self.newline();
                        } else {
                            self.out.push(br);
                            self.column = 0;
                        }
                    }
                    self.push(&" ".repeat(indent));
                    start = end;
                }
            } else if (ch.is_none()
                || ch == Some(' ')
                || ch.is_some_and(is_break)
                || ch == Some('\''))
                && start < end
            {
                let seg: String = chars[start..end].iter().collect();
                self.push(&seg);
                start = end;
            }
            if ch == Some('\'') {
                self.push("''");
                start = end + 1;
            }
            if let Some(c) = ch {
                spaces = c == ' ';
                breaks = is_break(c);
            }
        }
        self.push("'");
    }

    fn string(&mut self, s: &str, indent: usize, simple_key: bool) {
        match choose(s, false, simple_key) {
            Style::Plain => self.plain(s, indent),
            Style::Single => self.single(s, indent),
            Style::Double => self.push(&double_quoted(s)),
        }
    }

    /// A scalar or empty collection in block context.
    fn block_scalar(&mut self, v: &Value, indent: usize) {
        match v {
            Value::String(s) => self.string(s, indent, false),
            other => {
                let t = self.flow(other);
                self.push(&t);
            }
        }
    }

    /// A collection or scalar in flow style.
    fn flow(&self, v: &Value) -> String {
        match v {
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => yaml_number(n),
            Value::String(s) => match choose(s, true, false) {
                Style::Plain => s.clone(),
                Style::Single => {
                    let mut e = Emitter::default();
                    e.single(s, 0);
                    e.out
                }
                Style::Double => double_quoted(s),
            },
            Value::Array(a) => {
                let items: Vec<String> = a.iter().map(|x| self.flow(x)).collect();
                format!("[{}]", items.join(", "))
            }
            Value::Object(m) => {
                let items: Vec<String> = m
                    .iter()
                    .map(|(k, x)| format!("{}: {}", self.flow_key(k), self.flow(x)))
                    .collect();
                format!("{{{}}}", items.join(", "))
            }
        }
    }

    fn flow_key(&self, k: &str) -> String {
        match choose(k, true, true) {
            Style::Plain => k.to_string(),
            Style::Single => {
                let mut e = Emitter::default();
                e.single(k, 0);
                e.out
            }
            Style::Double => double_quoted(k),
        }
    }

    fn key(&mut self, k: &str, indent: usize) {
        if k.is_empty() {
            self.push("? ''");
            self.newline();
            self.push(&" ".repeat(indent));
            self.push(":");
        } else {
            self.string(k, indent, true);
            self.push(":");
        }
    }

    fn mapping(&mut self, m: &Map<String, Value>, indent: usize) {
        for (k, v) in m {
            self.pad(indent);
            self.key(k, indent);
            self.value(v, indent, true);
        }
    }

    fn sequence(&mut self, a: &[Value], indent: usize) {
        for v in a {
            self.pad(indent);
            self.push("-");
            self.value(v, indent, false);
        }
    }

    /// The value after `key:` (in a mapping at `indent`) or after `-` (in a sequence at `indent`).
    fn value(&mut self, v: &Value, indent: usize, in_mapping: bool) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                if in_mapping {
                    self.newline();
                    self.mapping(m, indent + 2);
                } else {
                    self.push(" ");
                    self.mapping(m, indent + 2);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                if in_mapping {
                    self.newline();
                    self.sequence(a, indent);
                } else {
                    self.push(" ");
                    self.sequence(a, indent + 2);
                }
            }
            scalar => {
                self.push(" ");
                self.block_scalar(scalar, indent + 2);
            }
        }
        if !self.out.ends_with('\n') {
            self.newline();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_output_matches_pyyaml() {
        let words: Vec<String> = (0..60).map(|i| format!("word{i}")).collect();
        let doc = json!({
            "postgresql": {"parameters": {"wal_log_hints": "on", "max_connections": 100,
                "work_mem": "8MB", "archive_command": words.join(" ")},
                "pg_hba": ["host all all 0.0.0.0/0 md5", "local all all trust"], "use_pg_rewind": true},
            "ttl": 30, "pause": null, "x": 1.5, "e": [], "f": {}, "g": [[1, 2], {"a": 1, "b": [3]}],
            "h": "it's a 'quote'", "i": "line1\nline2\n", "j": "tab\there", "k": "caf\u{e9}",
            "l": "bell\u{7}", "on": "yes", "": "empty key", "m": "-", "n": "- x", "o": "a:b",
            "p": "x #y", "q": "#x", "r": "@x", "s": "a, b", "t": "[x]", "u": "1_000", "v": "0o17",
            "w": "+.inf", "z": 1e20, "y": 1e-7, "yy": 3.0
        });
        // The text PyYAML 6 prints for the same document.
        let want = "? ''\n: empty key\ne: []\nf: {}\ng:\n- - 1\n  - 2\n- a: 1\n  b:\n  - 3\nh: it's a 'quote'\ni: 'line1\n\n  line2\n\n  '\nj: \"tab\\there\"\nk: caf\u{e9}\nl: \"bell\\a\"\nm: '-'\nn: '- x'\no: a:b\n'on': 'yes'\np: 'x #y'\npause: null\npostgresql:\n  parameters:\n    archive_command: word0 word1 word2 word3 word4 word5 word6 word7 word8 word9 word10 word11 word12 word13 word14 word15 word16 word17 word18 word19 word20 word21 word22 word23 word24 word25 word26 word27\n      word28 word29 word30 word31 word32 word33 word34 word35 word36 word37 word38 word39 word40 word41 word42 word43 word44 word45 word46 word47 word48 word49 word50 word51 word52 word53 word54 word55\n      word56 word57 word58 word59\n    max_connections: 100\n    wal_log_hints: 'on'\n    work_mem: 8MB\n  pg_hba:\n  - host all all 0.0.0.0/0 md5\n  - local all all trust\n  use_pg_rewind: true\nq: '#x'\nr: '@x'\ns: a, b\nt: '[x]'\nttl: 30\nu: '1_000'\nv: 0o17\nw: '+.inf'\nx: 1.5\ny: 1.0e-07\nyy: 3.0\nz: 1.0e+20\n";
        let got = dump(&doc);
        for (g, w) in got.lines().zip(want.lines()) {
            assert_eq!(g, w);
        }
        assert_eq!(got, want);
    }

    #[test]
    fn flow_output_matches_pyyaml() {
        assert_eq!(
            dump_flow(&json!([[1, 2], {"a": 1, "b": [3]}])),
            "[[1, 2], {a: 1, b: [3]}]\n"
        );
        assert_eq!(
            dump_flow(
                &json!({"nofailover": true, "replicatefrom": "node1", "x": "a b", "y": "a,b"})
            ),
            "{nofailover: true, replicatefrom: node1, x: a b, y: 'a,b'}\n"
        );
    }

    #[test]
    fn list_rows_and_resolvers() {
        assert_eq!(
            dump(&json!([{"Cluster": "c", "Member": "m", "TL": 1, "Tags": {"nofailover": true}}])),
            "- Cluster: c\n  Member: m\n  TL: 1\n  Tags:\n    nofailover: true\n"
        );
        for s in [
            "on",
            "Off",
            "YES",
            "~",
            "null",
            "12",
            "0x1F",
            "017",
            "1:20",
            "1.5",
            ".5",
            "+1",
            "1_0",
            "0b101",
            "-1:20",
            "1.",
            ".inf",
            "-.inf",
            "+.INF",
            "1__2",
            "2024-01-01",
            "2024-1-1 10:00:00.5 +01:00",
            "2024-01-01T10:00:00Z",
            "=",
            "<<",
        ] {
            assert!(resolves_to_non_string(s), "{s}");
        }
        // Each as PyYAML 6 reads it back: text.
        for s in [
            "y",
            "n",
            "8MB",
            "1e3",
            "0o17",
            "1.5.2",
            "0/3000060",
            "2024-01-01x",
            "node1",
            "-.5e+3",
            "08",
            "1:60",
        ] {
            assert!(!resolves_to_non_string(s), "{s}");
        }
        assert_eq!(python_float_repr(1e16), "1e+16");
        assert_eq!(python_float_repr(0.0001), "0.0001");
        assert_eq!(python_float_repr(2.0), "2.0");
    }
}
