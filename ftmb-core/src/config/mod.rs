//! Parser for Click's configuration language.
//!
//! The entry point is [`parse`], which turns a configuration [`Source`] into a
//! flat [`Config`]: a list of [`ElementDecl`]s and [`Connection`]s between them.
//! Compound element classes are expanded (their elements get `outer/inner`
//! names), connections through compound `input`/`output` pseudo-elements are
//! resolved so the result only references real elements, and `$VARIABLE`s in
//! arguments are substituted.  Every [`Span`] is a byte range into the
//! *original* source text, so errors ([`ConfigError`]) point at what the user
//! wrote.
//!
//! # Grammar (summary)
//!
//! ```text
//! config      ::= stmt*
//! stmt        ::= ";"
//!               | names "::" class args? ";"              // a, b :: Class(args);
//!               | chain ";"                               // a -> b -> c;
//!               | "elementclass" IDENT "{" formals? stmt* "}"
//!               | "elementclass" IDENT IDENT ";"          // synonym
//!               | "define" "(" "$NAME value" ("," ...)* ")" ";"
//!               | "require" "(" ... ")" ";"              // ignored
//! names       ::= IDENT ("," IDENT)*
//! chain       ::= endpoint ("->" endpoint)*
//! endpoint    ::= port? element port?                      // [1] x [0]
//! element     ::= IDENT "::" IDENT args?                   // inline declaration
//!               | IDENT args?                              // reference or anonymous
//! port        ::= "[" DIGITS "]"
//! args        ::= "(" raw text with balanced parentheses ")"
//! formals     ::= "$" NAME ("," "$" NAME)* "|"
//! IDENT       ::= [A-Za-z_@] [A-Za-z0-9_@/]*                // no "//" or "/*" inside
//! ```
//!
//! * A bare identifier (no `::`) names a declared element of the current scope
//!   if one exists (declarations may come later in the file); otherwise it
//!   must be a known class or compound and denotes an *anonymous* element,
//!   named `Class@N` where `N` is one more than the number of elements the
//!   scope had so far (as Click does).
//! * Comments: `// ...`, `/* ... */`, and `# ...` (to end of line; Click's
//!   preprocessor lines).  Comments are also allowed and removed inside
//!   arguments.
//! * Arguments are the raw text between the parentheses, split at top-level
//!   commas (respecting `"..."` with backslash escapes, `'...'`, nested
//!   `()[]{}` and comments) and trimmed; quotes are kept (see [`unquote`]).
//! * `$NAME` and `${NAME}` in arguments (outside single quotes) are replaced
//!   by the compound's formal parameters, then by command-line variables, then
//!   by `define`d values.  Unknown variables are errors.
//! * Semicolons are required between statements, except before `}` and at
//!   the end of input; none is needed after an `elementclass` body.
//!
//! * Compound bodies see the formal parameters of enclosing compounds they
//!   are defined in; `define` is only allowed at the top level (values may
//!   use earlier variables).  Element names of a compound instance are
//!   `instance/inner`; connections through `input`/`output` are replaced by
//!   direct connections, and unused-port gaps or connections to ports the
//!   body does not use are errors.
//!
//! Not supported: Click's `connectiontunnel`, compound overloading (`...`),
//! keyword formals / `__REST__`, anonymous compound classes `{ ... }` used in
//! place of a class name, multi-endpoint connections (`a, b -> c`) and port
//! lists (`[0, 1]`), and `require` semantics (it is parsed and ignored).

mod args;
mod error;
mod flatten;
mod grammar;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use args::{split_args, unquote};
pub use error::{suggest, ConfigError};

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

/// Parses a Click configuration.
///
/// `vars` holds command-line variable values (keys with or without the
/// leading `$`); they override `define` defaults.  `classes` lists the known
/// primitive element class names.
pub fn parse(
    source: &Source,
    vars: &BTreeMap<String, String>,
    classes: &[&str],
) -> Result<Config, ConfigError> {
    let stmts = grammar::parse_statements(&source.text)?;
    flatten::flatten(&source.text, &stmts, vars, classes)
}
