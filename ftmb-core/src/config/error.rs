//! Configuration errors, their ariadne rendering, and "did you mean" help.

use super::ast::{Source, Span};

/// An error in a configuration, located in the original source text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// The main message (e.g. "unknown element class `Countr`").
    pub message: String,
    /// The offending text.
    pub span: Span,
    /// Secondary labelled locations (e.g. a previous declaration).
    pub labels: Vec<(Span, String)>,
    /// Optional help line (e.g. "did you mean `Counter`?").
    pub help: Option<String>,
}

impl ConfigError {
    /// Creates an error with a message and the span of the offending text.
    pub fn new(message: impl Into<String>, span: Span) -> Self {
        ConfigError {
            message: message.into(),
            span,
            labels: Vec::new(),
            help: None,
        }
    }

    /// Adds a secondary labelled span.
    pub fn with_label(mut self, span: Span, label: impl Into<String>) -> Self {
        self.labels.push((span, label.into()));
        self
    }

    /// Sets the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the help line if `help` is `Some`.
    pub(super) fn with_help_opt(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// 1-based line and column (in characters) of the error's start.
    pub fn line_col(&self, source: &Source) -> (usize, usize) {
        line_col(&source.text, self.span.start)
    }

    /// Renders an ariadne report: a `╭─[ file:line:column ]` header, the
    /// offending text underlined with the message, secondary labels, and the
    /// help line.  Only the lines involved are shown.
    pub fn render(&self, source: &Source, color: bool) -> String {
        use ariadne::{Config, IndexType, Label, Report, ReportKind};
        let text = source.text.as_str();
        let name = source.name.as_str();
        let main = fix_span(text, self.span);
        // Labels ordered by position keep ariadne from splitting the report
        // into several snippets.
        let order = |r: &std::ops::Range<usize>| i32::try_from(r.start).unwrap_or(i32::MAX);
        let mut report = Report::build(ReportKind::Error, (name, main.clone()))
            .with_config(
                Config::default()
                    .with_color(color)
                    .with_index_type(IndexType::Byte),
            )
            .with_message(&self.message)
            .with_label(
                Label::new((name, main.clone()))
                    .with_message(&self.message)
                    .with_order(order(&main)),
            );
        for (span, msg) in &self.labels {
            let r = fix_span(text, *span);
            report = report.with_label(
                Label::new((name, r.clone()))
                    .with_message(msg)
                    .with_order(order(&r)),
            );
        }
        if let Some(help) = &self.help {
            report = report.with_help(help);
        }
        let mut out = Vec::new();
        let cache = (name, ariadne::Source::from(text));
        if report.finish().write(cache, &mut out).is_err() {
            let (l, c) = self.line_col(source);
            return format!("error: {}\n  --> {name}:{l}:{c}\n", self.message);
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// 1-based (line, column) of byte offset `pos` in `text`; the column counts
/// characters.
pub(super) fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let mut pos = pos.min(text.len());
    while !text.is_char_boundary(pos) {
        pos -= 1;
    }
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..pos].chars().count() + 1;
    (line, col)
}

/// Clamps a span to the text and char boundaries, widening an empty span to
/// one character when possible so it is visible in the report.
fn fix_span(text: &str, span: Span) -> std::ops::Range<usize> {
    let clamp = |mut p: usize, up: bool| {
        p = p.min(text.len());
        while !text.is_char_boundary(p) {
            if up {
                p += 1;
            } else {
                p -= 1;
            }
        }
        p
    };
    let start = clamp(span.start, false);
    let mut end = clamp(span.end.max(start), true);
    let next = text[start..].chars().next().filter(|&c| c != '\n');
    if let (true, Some(c)) = (end == start, next) {
        end = start + c.len_utf8();
    }
    start..end
}

/// Finds the candidate nearest to `word` by (case-insensitive, optimal string
/// alignment) Damerau-Levenshtein distance, if it is within
/// `max(2, len / 3)` edits.  Ties go to the first candidate.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let w: Vec<char> = word.to_lowercase().chars().collect();
    let threshold = (w.len() / 3).max(2);
    let mut best: Option<(usize, &'a str)> = None;
    for cand in candidates {
        let c: Vec<char> = cand.to_lowercase().chars().collect();
        if c.len().abs_diff(w.len()) > threshold {
            continue;
        }
        let d = distance(&w, &c);
        if d <= threshold && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, cand));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal string alignment distance.
fn distance(a: &[char], b: &[char]) -> usize {
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, v) in d[0].iter_mut().enumerate() {
        *v = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}
