//! The parsed configuration's data: sources and spans, element
//! declarations, connections. A leaf module: the grammar, the argument
//! splitter, the flattener and the error reports all build on it.

/// A configuration text and the name used for it in messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// File path (or other label) shown in error reports.
    pub name: String,
    /// The full configuration text.
    pub text: String,
}

impl Source {
    /// Creates a source from a name and its text.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// A byte range `start..end` into the original source text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// Creates a span.
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The source text covered by this span (empty if out of range).
    pub fn text<'a>(&self, source: &'a str) -> &'a str {
        source.get(self.start..self.end).unwrap_or("")
    }

    /// Smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// One configuration argument of an element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    /// The argument after variable substitution and comment removal, trimmed.
    /// Quotes are kept.
    pub text: String,
    /// Where the (trimmed) argument was written in the original source.
    pub span: Span,
}

/// One (flattened) element of the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElementDecl {
    /// Full element name (`outer/inner` inside compounds, `Class@N` if anonymous).
    pub name: String,
    /// Primitive element class name.
    pub class: String,
    /// Configuration arguments.
    pub args: Vec<Arg>,
    /// The text inside the parentheses; an empty span just after the class
    /// token if there were no parentheses.
    pub args_span: Span,
    /// The element's name token, or the class token for anonymous elements.
    pub span: Span,
    /// The class token.
    pub class_span: Span,
}

/// A connection `from[from_port] -> [to_port]to` between two elements
/// (indices into [`Config::elements`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// Source element index.
    pub from: usize,
    /// Source output port.
    pub from_port: usize,
    /// Destination element index.
    pub to: usize,
    /// Destination input port.
    pub to_port: usize,
    /// The connection as written (from the source endpoint to the destination
    /// endpoint; for connections through compounds, the outermost one).
    pub span: Span,
}

/// A parsed and flattened configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// All real (primitive) elements, in order of appearance.
    pub elements: Vec<ElementDecl>,
    /// All connections between real elements, deduplicated, sorted by
    /// `(from, from_port, to, to_port)`.
    pub connections: Vec<Connection>,
}

impl Config {
    /// Index of the element with the given full name.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.elements.iter().position(|e| e.name == name)
    }
}
