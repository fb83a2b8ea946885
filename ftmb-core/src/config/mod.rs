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
mod ast;
mod error;
mod flatten;
mod grammar;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use args::{split_args, unquote};
pub use ast::{Arg, Config, Connection, ElementDecl, Source, Span};
pub use error::{suggest, ConfigError};

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
