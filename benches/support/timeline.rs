//! One failover drawn as an SVG timeline: acknowledged writes per node per 100 ms around the
//! fault, with the fault and the moment writes resumed marked, so a reader sees the outage.
//!
//! Plain SVG written by hand: the picture needs bars, two lines and a few labels, which no
//! plotting library's font machinery is worth.

use std::fmt::Write as _;
use std::time::Duration;

/// What one picture shows.
pub struct Timeline<'a> {
    /// The title line, e.g. `S1 async, ttl 10 / loop 2: outage 0.28 s`.
    pub title: String,
    /// The node names, one lane each.
    pub nodes: Vec<String>,
    /// Every acknowledged write: node index and time since the writers started.
    pub acks: &'a [(usize, Duration)],
    /// When the fault was injected.
    pub fault: Duration,
    /// When writes came back (the end of the outage), if they did.
    pub resumed: Option<(usize, Duration)>,
}

const BIN: Duration = Duration::from_millis(100);
const WIDTH: f64 = 900.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const LANE: f64 = 50.0;
const BOTTOM: f64 = 40.0;
const COLOURS: [&str; 3] = ["#4477aa", "#228833", "#cc6677"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Timeline<'_> {
    /// The SVG document: 2 s before the fault to 2 s after writes resumed.
    pub fn svg(&self) -> String {
        let from = self.fault.saturating_sub(Duration::from_secs(2));
        let until = self.resumed.map_or(self.fault, |(_, t)| t) + Duration::from_secs(2);
        let bins = ((until - from).as_millis() / BIN.as_millis()).max(1) as usize;
        let plot_w = WIDTH - LEFT - RIGHT;
        let height = TOP + LANE * self.nodes.len() as f64 + BOTTOM;
        let x = |t: Duration| -> f64 {
            let rel = t.saturating_sub(from).as_secs_f64() / (until - from).as_secs_f64();
            LEFT + rel.clamp(0.0, 1.0) * plot_w
        };
        let mut counts = vec![vec![0u32; bins]; self.nodes.len()];
        for &(node, at) in self.acks {
            if at < from || at >= until || node >= self.nodes.len() {
                continue;
            }
            let b = ((at - from).as_millis() / BIN.as_millis()) as usize;
            counts[node][b.min(bins - 1)] += 1;
        }
        let peak = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{}</text>"#,
            escape(&self.title)
        );
        let bar_w = plot_w / bins as f64;
        for (i, name) in self.nodes.iter().enumerate() {
            let base = TOP + LANE * (i as f64 + 1.0) - 8.0;
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                LEFT - 8.0,
                base - 12.0,
                escape(name)
            );
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{base}" x2="{}" y2="{base}" stroke="#bbbbbb"/>"##,
                LEFT + plot_w
            );
            for (b, &n) in counts[i].iter().enumerate() {
                if n == 0 {
                    continue;
                }
                let h = (LANE - 14.0) * n as f64 / peak;
                let _ = writeln!(
                    s,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"/>"#,
                    LEFT + b as f64 * bar_w,
                    base - h,
                    (bar_w - 1.0).max(0.5),
                    COLOURS[i % COLOURS.len()]
                );
            }
        }
        let axis = TOP + LANE * self.nodes.len() as f64;
        let first = (from.as_secs_f64() - self.fault.as_secs_f64()).ceil() as i64;
        let last = (until.as_secs_f64() - self.fault.as_secs_f64()).floor() as i64;
        let step = ((last - first) / 12).max(1);
        let mut t = first;
        while t <= last {
            let at = if t >= 0 {
                self.fault + Duration::from_secs(t as u64)
            } else {
                self.fault.saturating_sub(Duration::from_secs((-t) as u64))
            };
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{t:+} s</text>"#,
                x(at),
                axis + 16.0
            );
            t += step;
        }
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#555555">time since the fault; bars: acknowledged writes per node per 100 ms</text>"##,
            LEFT + plot_w / 2.0,
            axis + 32.0
        );
        let mut mark = |t: Duration, colour: &str, label: &str| {
            let _ = writeln!(
                s,
                r#"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{axis}" stroke="{colour}" stroke-width="2" stroke-dasharray="6,3"/>"#,
                x(t)
            );
            // Near the right edge the label goes to the left of its line, so it stays in view.
            let (at, anchor) = if x(t) > WIDTH - 220.0 {
                (x(t) - 4.0, "end")
            } else {
                (x(t) + 4.0, "start")
            };
            let _ = writeln!(
                s,
                r#"<text x="{at:.1}" y="{}" fill="{colour}" text-anchor="{anchor}">{}</text>"#,
                TOP + 10.0,
                escape(label)
            );
        };
        mark(self.fault, "#cc3311", "fault");
        if let Some((node, t)) = self.resumed {
            let name = self.nodes.get(node).map_or("?", String::as_str);
            mark(t, "#117733", &format!("writes resume on {name}"));
        }
        s.push_str("</svg>\n");
        s
    }
}
