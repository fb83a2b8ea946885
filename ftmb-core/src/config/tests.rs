//! Unit tests for the configuration parser.

use std::collections::BTreeMap;

use super::*;

const CLASSES: &[&str] = &[
    "FromDump",
    "IPClassifier",
    "IPRewriter",
    "Strip",
    "CheckIPHeader",
    "StoreIPAddress",
    "Counter",
    "Discard",
    "Unstrip",
    "ToDump",
    "DriverManager",
    "Idle",
    "Print",
    "Queue",
    "Tee",
    "Paint",
];

const NAT: &str = "\
src :: FromDump($IN, STOP true, FORCE_IP true, TIMING false);
cl :: IPClassifier(src net $INSIDE and (tcp or udp), dst net $INSIDE and (tcp or udp), -);
rw :: IPRewriter(pattern 198.18.0.1 1024-65535 - - 0 1, drop);
src -> Strip(14) -> CheckIPHeader(VERBOSE false) -> cl;
cl[0] -> [0]rw;
cl[1] -> StoreIPAddress(198.18.0.1, dst) -> [1]rw;
cl[2] -> other :: Counter -> Discard;
rw[0] -> fwd :: Counter -> Unstrip(14) -> ToDump($OUT, ENCAP ETHER);
rw[1] -> rev :: Counter -> Unstrip(14) -> ToDump($OUT2, ENCAP ETHER);
DriverManager(wait, print fwd.count, print rev.count, print other.count, print rw.nmappings, stop);
";

fn src(text: &str) -> Source {
    Source::new("test.click", text)
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ok(text: &str) -> Config {
    ok_vars(text, &[])
}

fn ok_vars(text: &str, v: &[(&str, &str)]) -> Config {
    match parse(&src(text), &vars(v), CLASSES) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error:\n{}", e.render(&src(text), false)),
    }
}

fn err(text: &str) -> ConfigError {
    err_vars(text, &[])
}

fn err_vars(text: &str, v: &[(&str, &str)]) -> ConfigError {
    match parse(&src(text), &vars(v), CLASSES) {
        Ok(c) => panic!("expected an error, got {c:#?}"),
        Err(e) => e,
    }
}

/// Asserts the error message contains `msg` and starts at `line:col`.
fn check_err(text: &str, e: &ConfigError, msg: &str, line: usize, col: usize) {
    let s = src(text);
    assert!(
        e.message.contains(msg),
        "message {:?} lacks {msg:?}",
        e.message
    );
    assert_eq!(e.line_col(&s), (line, col), "{}", e.render(&s, false));
    let r = e.render(&s, false);
    assert!(r.contains(&format!("test.click:{line}:{col}")), "{r}");
}

fn names(c: &Config) -> Vec<&str> {
    c.elements.iter().map(|e| e.name.as_str()).collect()
}

fn conns(c: &Config) -> Vec<(String, usize, String, usize)> {
    c.connections
        .iter()
        .map(|k| {
            (
                c.elements[k.from].name.clone(),
                k.from_port,
                c.elements[k.to].name.clone(),
                k.to_port,
            )
        })
        .collect()
}

fn conn(a: &str, ap: usize, b: &str, bp: usize) -> (String, usize, String, usize) {
    (a.to_string(), ap, b.to_string(), bp)
}

fn args(c: &Config, name: &str) -> Vec<String> {
    let i = c.find(name).unwrap_or_else(|| panic!("no element {name}"));
    c.elements[i].args.iter().map(|a| a.text.clone()).collect()
}

fn nat_vars() -> Vec<(&'static str, &'static str)> {
    vec![
        ("IN", "in.pcap"),
        ("INSIDE", "10.0.0.0/8"),
        ("OUT", "out.pcap"),
        ("$OUT2", "out2.pcap"),
    ]
}

#[test]
fn nat_config_elements() {
    let c = ok_vars(NAT, &nat_vars());
    assert_eq!(
        names(&c),
        [
            "src",
            "cl",
            "rw",
            "Strip@4",
            "CheckIPHeader@5",
            "StoreIPAddress@6",
            "other",
            "Discard@8",
            "fwd",
            "Unstrip@10",
            "ToDump@11",
            "rev",
            "Unstrip@13",
            "ToDump@14",
            "DriverManager@15",
        ]
    );
    let classes: Vec<&str> = c.elements.iter().map(|e| e.class.as_str()).collect();
    assert_eq!(classes[0], "FromDump");
    assert_eq!(classes[3], "Strip");
    assert_eq!(classes[14], "DriverManager");
    assert_eq!(
        args(&c, "src"),
        ["in.pcap", "STOP true", "FORCE_IP true", "TIMING false"]
    );
    assert_eq!(
        args(&c, "cl"),
        [
            "src net 10.0.0.0/8 and (tcp or udp)",
            "dst net 10.0.0.0/8 and (tcp or udp)",
            "-"
        ]
    );
    assert_eq!(
        args(&c, "rw"),
        ["pattern 198.18.0.1 1024-65535 - - 0 1", "drop"]
    );
    assert_eq!(args(&c, "ToDump@14"), ["out2.pcap", "ENCAP ETHER"]);
    assert_eq!(args(&c, "DriverManager@15").len(), 6);
    assert_eq!(args(&c, "other"), Vec::<String>::new());
    // Spans refer to the original text.
    let e = &c.elements[c.find("Strip@4").unwrap()];
    assert_eq!(e.span.text(NAT), "Strip");
    assert_eq!(e.class_span.text(NAT), "Strip");
    assert_eq!(e.args_span.text(NAT), "14");
    let e = &c.elements[c.find("other").unwrap()];
    assert_eq!(e.span.text(NAT), "other");
    assert_eq!(e.class_span.text(NAT), "Counter");
    assert_eq!(e.args_span.start, e.class_span.end);
    assert_eq!(e.args_span.end, e.class_span.end);
    assert_eq!(c.elements[0].args[0].span.text(NAT), "$IN");
}

#[test]
fn nat_config_connections() {
    let c = ok_vars(NAT, &nat_vars());
    assert_eq!(
        conns(&c),
        [
            conn("src", 0, "Strip@4", 0),
            conn("cl", 0, "rw", 0),
            conn("cl", 1, "StoreIPAddress@6", 0),
            conn("cl", 2, "other", 0),
            conn("rw", 0, "fwd", 0),
            conn("rw", 1, "rev", 0),
            conn("Strip@4", 0, "CheckIPHeader@5", 0),
            conn("CheckIPHeader@5", 0, "cl", 0),
            conn("StoreIPAddress@6", 0, "rw", 1),
            conn("other", 0, "Discard@8", 0),
            conn("fwd", 0, "Unstrip@10", 0),
            conn("Unstrip@10", 0, "ToDump@11", 0),
            conn("rev", 0, "Unstrip@13", 0),
            conn("Unstrip@13", 0, "ToDump@14", 0),
        ]
    );
    assert_eq!(c.connections[1].span.text(NAT), "cl[0] -> [0]rw");
    assert_eq!(
        c.connections[8].span.text(NAT),
        "StoreIPAddress(198.18.0.1, dst) -> [1]rw"
    );
    assert_eq!(c.connections[0].span.text(NAT), "src -> Strip(14)");
}

#[test]
fn port_syntax_variants() {
    let c = ok("a :: Tee; b :: Discard; a[1]->b; a [2] -> [0] b; a->[1]b;a[ 3 ]->[ 4 ]b");
    assert_eq!(
        conns(&c),
        [
            conn("a", 0, "b", 1),
            conn("a", 1, "b", 0),
            conn("a", 2, "b", 0),
            conn("a", 3, "b", 4)
        ]
    );
}

#[test]
fn multiple_names_and_forward_references() {
    let c = ok("x -> y; x, y :: Counter(1, 2); z :: Discard");
    assert_eq!(names(&c), ["x", "y", "z"]);
    assert_eq!(args(&c, "y"), ["1", "2"]);
    assert_eq!(conns(&c), [conn("x", 0, "y", 0)]);
}

#[test]
fn declared_name_shadows_class() {
    let c = ok("Counter :: Counter; Idle -> Counter;");
    assert_eq!(names(&c), ["Counter", "Idle@2"]);
    assert_eq!(conns(&c), [conn("Idle@2", 0, "Counter", 0)]);
}

#[test]
fn duplicate_connections_are_merged() {
    let c = ok("a :: Idle; b :: Discard; a -> b; a -> b;");
    assert_eq!(c.connections.len(), 1);
}

#[test]
fn compound_flattening() {
    let text = "\
elementclass Pipe { input -> c :: Counter -> Strip(14) -> output; }
s :: Idle; p :: Pipe;
s -> p -> Discard;";
    let c = ok(text);
    assert_eq!(names(&c), ["s", "p/c", "p/Strip@2", "Discard@3"]);
    assert_eq!(
        conns(&c),
        [
            conn("s", 0, "p/c", 0),
            conn("p/c", 0, "p/Strip@2", 0),
            conn("p/Strip@2", 0, "Discard@3", 0)
        ]
    );
    // Inner spans point into the compound body.
    let e = &c.elements[1];
    assert_eq!(e.span.text(text), "c");
    assert_eq!(e.span.start, text.find("c ::").unwrap());
}

#[test]
fn compound_multi_port_and_passthrough() {
    let text = "\
elementclass Sw {
  input[0] -> a :: Counter -> [0]output;
  input[1] -> b :: Counter -> [1]output;
  input[2] -> [2]output;
}
elementclass Thru { input -> output }
s :: Tee; sw :: Sw;
s[0] -> sw; s[1] -> [1]sw; s[2] -> [2]sw;
sw[0] -> d0 :: Discard; sw[1] -> d1 :: Discard; sw[2] -> Thru -> Thru -> d2 :: Discard;";
    let c = ok(text);
    assert_eq!(names(&c), ["s", "sw/a", "sw/b", "d0", "d1", "d2"]);
    assert_eq!(
        conns(&c),
        [
            conn("s", 0, "sw/a", 0),
            conn("s", 1, "sw/b", 0),
            conn("s", 2, "d2", 0),
            conn("sw/a", 0, "d0", 0),
            conn("sw/b", 0, "d1", 0),
        ]
    );
}

#[test]
fn compound_fanout_and_anonymous_instance() {
    let text = "\
elementclass Dup { input -> t :: Tee; t[0] -> output; t[1] -> [1]output; }
Idle -> Dup; Dup@2 [1] -> Discard; Dup@2 -> Print(x);
x :: Counter; Idle -> Dup -> x";
    // `Dup@2` is not a declared name: referencing it is an error.
    let e = err(text);
    check_err(text, &e, "unknown element class `Dup@2`", 2, 14);
    let c = ok(
        "elementclass Dup { input -> t :: Tee; t[0] -> output; t[1] -> [1]output; }
Idle -> d :: Dup -> Discard; d[1] -> Print(x);",
    );
    assert_eq!(names(&c), ["Idle@1", "d/t", "Discard@3", "Print@4"]);
    assert_eq!(
        conns(&c),
        [
            conn("Idle@1", 0, "d/t", 0),
            conn("d/t", 0, "Discard@3", 0),
            conn("d/t", 1, "Print@4", 0)
        ]
    );
    let c = ok(
        "elementclass Dup { input -> t :: Tee; t[0] -> output; t[1] -> [1]output; }
Idle -> Dup -> Discard;",
    );
    assert_eq!(names(&c), ["Idle@1", "Dup@2/t", "Discard@3"]);
}

#[test]
fn nested_compounds_with_parameters() {
    let text = "\
elementclass Inner { $n | input -> Strip($n) -> c :: Counter -> output }
elementclass Outer {
  $x, $y |
  elementclass Local { input -> Paint($y) -> output }
  input -> i :: Inner($x) -> Local -> output;
  input[1] -> Inner(7) -> [1]output;
}
o :: Outer(14, 3);
Idle -> o -> Discard;
Idle -> [1]o[1] -> Discard;";
    let c = ok(text);
    assert_eq!(
        names(&c),
        [
            "o/i/Strip@1",
            "o/i/c",
            "o/Local@2/Paint@1",
            "o/Inner@3/Strip@1",
            "o/Inner@3/c",
            "Idle@2",
            "Discard@3",
            "Idle@4",
            "Discard@5",
        ]
    );
    assert_eq!(args(&c, "o/i/Strip@1"), ["14"]);
    assert_eq!(args(&c, "o/Local@2/Paint@1"), ["$y"].map(|_| "3"));
    assert_eq!(args(&c, "o/Inner@3/Strip@1"), ["7"]);
    // The arg span is the `$n` in the compound body.
    let strip = &c.elements[0];
    assert_eq!(strip.args[0].span.text(text), "$n");
    assert_eq!(
        conns(&c),
        [
            conn("o/i/Strip@1", 0, "o/i/c", 0),
            conn("o/i/c", 0, "o/Local@2/Paint@1", 0),
            conn("o/Local@2/Paint@1", 0, "Discard@3", 0),
            conn("o/Inner@3/Strip@1", 0, "o/Inner@3/c", 0),
            conn("o/Inner@3/c", 0, "Discard@5", 0),
            conn("Idle@2", 0, "o/i/Strip@1", 0),
            conn("Idle@4", 0, "o/Inner@3/Strip@1", 0),
        ]
    );
}

#[test]
fn compound_parameters_in_quotes_and_braces() {
    let c = ok(
        "elementclass P { $msg | input -> Print(\"${msg}!\", '$msg') -> output }
Idle -> P(hello) -> Discard;",
    );
    assert_eq!(args(&c, "P@2/Print@1"), ["\"hello!\"", "'$msg'"]);
}

#[test]
fn synonym_classes() {
    let c = ok("elementclass Cnt Counter; elementclass C2 Cnt; a :: C2; Idle -> Cnt;");
    assert_eq!(names(&c), ["a", "Idle@2", "Cnt@3"]);
    assert_eq!(c.elements[0].class, "Counter");
}

#[test]
fn define_and_override() {
    let text = "define($N 5, $M $N, $E);\nx :: Strip($N); y :: Strip(${M}); z :: Print($E);";
    let c = ok(text);
    assert_eq!(args(&c, "x"), ["5"]);
    assert_eq!(args(&c, "y"), ["5"]);
    assert_eq!(args(&c, "z"), Vec::<String>::new());
    let c = ok_vars(text, &[("N", "7")]);
    assert_eq!(args(&c, "x"), ["7"]);
    assert_eq!(args(&c, "y"), ["7"]);
    let c = ok_vars(text, &[("M", "9")]);
    assert_eq!(args(&c, "x"), ["5"]);
    assert_eq!(args(&c, "y"), ["9"]);
}

#[test]
fn require_is_ignored() {
    let c = ok("require(package \"foo\", library bar.click); a :: Idle;");
    assert_eq!(names(&c), ["a"]);
}

#[test]
fn spans_survive_substitution() {
    let text = "x :: Strip( $LEN ) -> Print(\"pre $MSG post\", ${LEN}0);";
    let c = ok_vars(text, &[("LEN", "14"), ("MSG", "a much longer message")]);
    let x = &c.elements[0];
    assert_eq!(x.args[0].text, "14");
    assert_eq!(x.args[0].span.text(text), "$LEN");
    assert_eq!(x.args_span.text(text), " $LEN ");
    let p = &c.elements[1];
    assert_eq!(p.args[0].text, "\"pre a much longer message post\"");
    assert_eq!(p.args[0].span.text(text), "\"pre $MSG post\"");
    assert_eq!(p.args[1].text, "140");
    assert_eq!(p.args[1].span.text(text), "${LEN}0");
    // An error after a substitution still points at the original text.
    let text = "x :: Strip($LEN); y :: Print($LEN, $MISSING);";
    let e = err_vars(text, &[("LEN", "a very long value indeed")]);
    check_err(text, &e, "unknown variable `$MISSING`", 1, 36);
    assert_eq!(e.span.text(text), "$MISSING");
}

#[test]
fn comments_in_odd_places() {
    let text = "\
// leading comment
# preprocessor-style line
a /* c */ :: /* c */ Counter /* c */ ( /* c, */ 1 // x, y
 , 2 ) /* c */ -> // c
 # hash line in a chain
 [0] /* */ b :: Discard/**/;/* trailing */
elementclass /* c */ C { /* c */ $p /* c */ | // c
  input -> /* c */ Strip($p /* c */) -> output }
a[1] -> C(3) -> b;
";
    let c = ok(text);
    assert_eq!(names(&c), ["a", "b", "C@3/Strip@1"]);
    assert_eq!(args(&c, "a"), ["1", "2"]);
    assert_eq!(c.elements[0].args[0].span.text(text), "1");
    assert_eq!(c.elements[0].args[1].span.text(text), "2");
    assert_eq!(args(&c, "C@3/Strip@1"), ["3"]);
    assert_eq!(
        conns(&c),
        [
            conn("a", 0, "b", 0),
            conn("a", 1, "C@3/Strip@1", 0),
            conn("C@3/Strip@1", 0, "b", 0)
        ]
    );
}

#[test]
fn args_splitting() {
    let text = r#"a, "b,c", 'd,e', f(g,h), [i,j], {k,l}, /* m, */ n, "x\"y,z" , , last // c, d"#;
    let a = split_args(text, 100);
    let t: Vec<&str> = a.iter().map(|a| a.text.as_str()).collect();
    assert_eq!(
        t,
        [
            "a",
            "\"b,c\"",
            "'d,e'",
            "f(g,h)",
            "[i,j]",
            "{k,l}",
            "n",
            "\"x\\\"y,z\"",
            "",
            "last"
        ]
    );
    assert_eq!(a[0].span, Span::new(100, 101));
    assert_eq!(a[6].span.start - 100, text.find("n,").unwrap());
    assert_eq!(a[9].span.end - a[9].span.start, 4);
    assert!(split_args("", 0).is_empty());
    assert!(split_args("  /* only a comment */ ", 0).is_empty());
    assert_eq!(split_args(" x ", 5)[0].span, Span::new(6, 7));
    // Unterminated things never panic.
    assert_eq!(split_args("\"abc, def", 0).len(), 1);
    assert_eq!(split_args("a /* x, y", 0).len(), 1);
}

#[test]
fn unquote_strings() {
    assert_eq!(unquote("\"a b\""), "a b");
    assert_eq!(unquote(r#""a\"b\n\t\\\x41""#), "a\"b\n\t\\A");
    assert_eq!(unquote("'a\\nb'"), "a\\nb");
    assert_eq!(unquote("pre \"mid\" 'x' post"), "pre mid x post");
    assert_eq!(unquote("plain"), "plain");
    assert_eq!(unquote("\"unterminated"), "unterminated");
}

#[test]
fn suggest_nearest() {
    assert_eq!(suggest("Countr", CLASSES.iter().copied()), Some("Counter"));
    assert_eq!(suggest("counter", CLASSES.iter().copied()), Some("Counter"));
    assert_eq!(suggest("Cuonter", CLASSES.iter().copied()), Some("Counter"));
    assert_eq!(suggest("Zzzzzzzz", CLASSES.iter().copied()), None);
}

// ----- errors -----

#[test]
fn error_missing_semicolon() {
    let text = "a :: Idle\nb :: Discard;";
    let e = err(text);
    check_err(text, &e, "expected `;` or `->`, found `b`", 2, 1);
    let text = "a :: Idle; a -> ;";
    check_err(
        text,
        &err(text),
        "expected element name or class, found `;`",
        1,
        17,
    );
    let text = "a :: ;";
    check_err(text, &err(text), "expected element class after `::`", 1, 6);
    let text = "-> a;";
    check_err(text, &err(text), "expected statement, found `->`", 1, 1);
    let text = "a, b Counter;";
    check_err(text, &err(text), "expected `::` after element names", 1, 6);
    let text = "a :: Tee; a[x] -> a;";
    check_err(text, &err(text), "expected port number", 1, 13);
    let text = "a :: Tee; a[1 -> a;";
    check_err(text, &err(text), "expected `]`", 1, 15);
    let text = "a :: Tee; [1] a -> a;";
    check_err(text, &err(text), "input port at the start", 1, 11);
    let text = "a :: Tee; a -> a [1];";
    check_err(text, &err(text), "output port at the end", 1, 18);
    let text = "a :: Tee; a[99999999999999999999999] -> a;";
    check_err(text, &err(text), "port number too large", 1, 13);
}

#[test]
fn error_parentheses() {
    let text = "a :: Idle;\nb :: Strip(14;\nc :: Idle;";
    let e = err(text);
    check_err(text, &e, "unclosed `(`", 2, 11);
    let text = "b :: Strip(14));";
    let e = err(text);
    check_err(text, &e, "expected `;` or `->`, found `)`", 1, 15);
    assert!(e.help.as_deref().unwrap_or("").contains("unbalanced"));
    let text = "b :: IPClassifier((tcp or udp);";
    check_err(text, &err(text), "unclosed `(`", 1, 18);
}

#[test]
fn error_unterminated_string_and_comment() {
    let text = "a :: Idle;\nb :: Print(\"hello, world);";
    check_err(text, &err(text), "unterminated string", 2, 12);
    let text = "a :: Print('it);";
    check_err(text, &err(text), "unterminated string", 1, 12);
    let text = "a :: Idle; /* never\nclosed";
    check_err(text, &err(text), "unterminated comment", 1, 12);
    let text = "a :: Print(x /* never);";
    check_err(text, &err(text), "unterminated comment", 1, 14);
}

#[test]
fn error_unknown_class() {
    let text = "a :: Idle;\n  c :: Countr(1);";
    let e = err(text);
    check_err(text, &e, "unknown element class `Countr`", 2, 8);
    assert_eq!(e.help.as_deref(), Some("did you mean `Counter`?"));
    let r = e.render(&src(text), false);
    assert!(r.contains("did you mean `Counter`?"), "{r}");
    let text = "Idle -> Discrad;";
    let e = err(text);
    check_err(text, &e, "unknown element class `Discrad`", 1, 9);
    assert_eq!(e.help.as_deref(), Some("did you mean `Discard`?"));
}

#[test]
fn error_undeclared_element() {
    let text = "counter :: Counter;\nIdle -> countr;";
    let e = err(text);
    check_err(text, &e, "undeclared element `countr`", 2, 9);
    assert_eq!(e.help.as_deref(), Some("did you mean `counter`?"));
    let text = "x :: Counter;\nx(3) -> Discard;";
    check_err(text, &err(text), "`x` is an element name", 2, 2);
}

#[test]
fn error_redeclared() {
    let text = "a :: Idle;\nb :: Idle;\na :: Discard;";
    let e = err(text);
    check_err(text, &e, "element `a` redeclared", 3, 1);
    assert_eq!(e.labels[0].0, Span::new(0, 1));
    let text = "a :: Idle; Idle -> a :: Counter;";
    check_err(text, &err(text), "element `a` redeclared", 1, 20);
    let text = "elementclass A { input -> output }\nelementclass A { input -> output }";
    check_err(text, &err(text), "element class `A` defined twice", 2, 14);
    let text = "define($X 1, $X 2);";
    check_err(text, &err(text), "variable `$X` defined twice", 1, 14);
}

#[test]
fn error_unknown_variable() {
    let text = "define($LENGTH 14);\nx :: Strip($LENGHT);";
    let e = err(text);
    check_err(text, &e, "unknown variable `$LENGHT`", 2, 12);
    let help = e.help.unwrap();
    assert!(help.contains("did you mean `$LENGTH`?"), "{help}");
    assert!(help.contains("known variables: $LENGTH"), "{help}");
    let text = "x :: Strip(${NOPE});";
    let e = err(text);
    check_err(text, &e, "unknown variable `$NOPE`", 1, 12);
    assert!(e.help.unwrap().contains("no variables are defined"));
    // Compound formals are not visible outside the compound.
    let text = "elementclass C { $a | input -> output }\nx :: Strip($a);";
    check_err(text, &err(text), "unknown variable `$a`", 2, 12);
}

#[test]
fn error_compound_arguments() {
    let text = "elementclass C { $a, $b | input -> Strip($a) -> Paint($b) -> output }\nIdle -> C(1) -> Discard;";
    let e = err(text);
    check_err(text, &e, "takes 2 arguments, but 1 was given", 2, 11);
    assert_eq!(e.help.as_deref(), Some("parameters: $a, $b"));
    assert_eq!(e.labels[0].0.text(text), "C");
    let text = "elementclass C { input -> output }\nc :: C(1, 2);";
    check_err(
        text,
        &err(text),
        "takes 0 arguments, but 2 were given",
        2,
        8,
    );
}

#[test]
fn error_compound_ports() {
    let text =
        "elementclass P {\n  input -> output;\n  input[1] -> Discard;\n}\np :: P;\nIdle -> [2]p;";
    let e = err(text);
    check_err(text, &e, "compound `P` has no input port 2", 6, 9);
    assert_eq!(e.labels[0].0.text(text), "P");
    let text = "elementclass P { input -> output }\np :: P;\np[1] -> Discard;";
    check_err(text, &err(text), "compound `P` has no output port 1", 3, 2);
    let text = "elementclass P { input[2] -> output }\nIdle -> P -> Discard;";
    check_err(
        text,
        &err(text),
        "`input` port 0 is unused, but port 2 is used",
        1,
        23,
    );
    let text = "elementclass P { input -> input }";
    // Not instantiated: only checked for syntax, but `input` as a
    // destination is detected once used.
    ok(text);
    let text = "elementclass P { Idle -> input; }\nIdle -> P -> Discard;";
    check_err(
        text,
        &err(text),
        "`input` cannot be a connection destination",
        1,
        26,
    );
    let text = "elementclass P { output -> Discard; }\nIdle -> P;";
    check_err(
        text,
        &err(text),
        "`output` cannot be a connection source",
        1,
        18,
    );
    let text = "elementclass P { input :: Counter; }\np :: P;";
    check_err(text, &err(text), "`input` is reserved", 1, 18);
}

#[test]
fn error_compound_structure() {
    let text = "elementclass P {\n  input -> output;\n";
    check_err(text, &err(text), "unclosed `{`", 2, 19);
    let text = "a :: Idle; }";
    check_err(text, &err(text), "expected statement, found `}`", 1, 12);
    let text = "elementclass A { input -> B -> output }\nelementclass B { input -> A -> output }\nIdle -> A -> Discard;";
    check_err(
        text,
        &err(text),
        "compound class `A` is used recursively",
        2,
        27,
    );
    let text = "elementclass C { $a $b | input -> output }";
    check_err(
        text,
        &err(text),
        "expected `,` or `|` after formal parameter",
        1,
        21,
    );
    let text =
        "elementclass C { input -> Print(x) -> output }\nIdle -> C -> Discard;\ndefine($X 1);";
    ok(text);
    let text = "elementclass C { define($X 1); input -> output }\nIdle -> C -> Discard;";
    check_err(
        text,
        &err(text),
        "`define` is only allowed at the top level",
        1,
        18,
    );
}

#[test]
fn render_is_compact() {
    let text = "a :: Idle;\nb :: Idle;\nc :: Countr;\nd :: Idle;\n";
    let e = err(text);
    let r = e.render(&src(text), false);
    assert!(r.contains("test.click:3:6"), "{r}");
    assert!(r.contains("Countr"), "{r}");
    assert!(r.contains("did you mean `Counter`?"), "{r}");
    assert!(r.lines().count() < 20, "{r}");
    let colored = e.render(&src(text), true);
    assert!(colored.contains('\u{1b}'));
    // Errors at end of input, and with labels, render too.
    let text = "a :: Idle;\na :: Strip(";
    let r = err(text).render(&src(text), false);
    assert!(r.contains("test.click:2:11"), "{r}");
    let text = "x :: Idle;\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\nx :: Idle;";
    let r = err(text).render(&src(text), false);
    assert!(r.lines().count() < 20, "{r}");
    assert!(r.contains("first declared here"), "{r}");
}

#[test]
fn unicode_does_not_confuse_spans() {
    let text = "// héllo wörld\nc :: Print(\"ünïcode\") -> Countér;";
    let e = err(text);
    check_err(text, &e, "unknown element class `Countér`", 2, 26);
    assert_eq!(e.help.as_deref(), Some("did you mean `Counter`?"));
    let _ = e.render(&src(text), false);
    let c = ok("c :: Print(\"ünïcode, ✓\");");
    assert_eq!(args(&c, "c"), ["\"ünïcode, ✓\""]);
}

// ----- robustness -----

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn try_all(text: &str) {
    let s = src(text);
    let v = vars(&nat_vars());
    match parse(&s, &v, CLASSES) {
        Ok(c) => {
            for k in &c.connections {
                assert!(k.from < c.elements.len() && k.to < c.elements.len());
            }
            for e in &c.elements {
                assert!(e.span.end <= text.len() && e.args_span.end <= text.len());
            }
        }
        Err(e) => {
            assert!(e.span.start <= text.len() && e.span.end <= text.len());
            let _ = e.line_col(&s);
            let _ = e.render(&s, false);
        }
    }
    let _ = split_args(text, 0);
    let _ = unquote(text);
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let alphabet: &[&str] = &[
        "a",
        "b",
        "x",
        "Counter",
        "Idle",
        "Discard",
        "P",
        "::",
        "->",
        ";",
        ",",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "|",
        "$",
        "$a",
        "${N}",
        "\"",
        "'",
        "\\",
        "/",
        "*",
        "/*",
        "*/",
        "//",
        "#",
        "\n",
        " ",
        "0",
        "1",
        "99",
        "elementclass",
        "define",
        "require",
        "input",
        "output",
        "é",
        "✓",
        "@",
        "\t",
    ];
    for _ in 0..3000 {
        let n = rng.below(40);
        let mut s = String::new();
        for _ in 0..n {
            s.push_str(alphabet[rng.below(alphabet.len())]);
        }
        try_all(&s);
        let bytes: Vec<u8> = (0..rng.below(60)).map(|_| rng.next() as u8).collect();
        try_all(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn mutated_configs_never_panic() {
    let base = format!(
        "{NAT}\nelementclass P {{ $a | input[0] -> Strip($a) -> [0]output; input[1] -> [1]output }}\n\
         p :: P(3); Idle -> p -> Discard; Idle -> [1]p[1] -> Discard; define($Q 1);\n"
    );
    let pieces: &[&[u8]] = &[
        b"(",
        b")",
        b"{",
        b"}",
        b"[",
        b"]",
        b";",
        b"->",
        b"::",
        b"\"",
        b"'",
        b"/*",
        b"$",
        b",",
        b"P",
        b"input",
        b"\n",
        b"\xc3\xa9",
        b"1",
    ];
    let mut rng = XorShift(12345);
    let mut oks = 0;
    for _ in 0..3000 {
        let mut b = base.clone().into_bytes();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(b.len() + 1).min(b.len());
            match rng.below(4) {
                0 => {
                    let end = (at + 1 + rng.below(8)).min(b.len());
                    b.drain(at..end);
                }
                1 => {
                    let p = pieces[rng.below(pieces.len())];
                    b.splice(at..at, p.iter().copied());
                }
                2 => {
                    if at < b.len() {
                        b[at] = rng.next() as u8;
                    }
                }
                _ => {
                    let from = rng.below(b.len());
                    let end = (from + rng.below(30)).min(b.len());
                    let chunk: Vec<u8> = b[from..end].to_vec();
                    b.splice(at..at, chunk);
                }
            }
        }
        let text = String::from_utf8_lossy(&b).into_owned();
        if parse(&src(&text), &vars(&nat_vars()), CLASSES).is_ok() {
            oks += 1;
        }
        try_all(&text);
    }
    assert!(oks > 0, "some mutations should still parse");
}

#[test]
fn pathological_inputs_are_bounded() {
    // Deeply nested compound definitions: rejected, no stack overflow.
    let mut text = String::new();
    for k in 0..200 {
        text.push_str(&format!("elementclass C{k} {{ "));
    }
    text.push_str(&"}".repeat(200));
    let e = err(&text);
    assert!(e.message.contains("nested too deeply"), "{}", e.message);
    // A long chain of compounds using each other works up to the limit.
    let mut text = String::from("elementclass C0 { input -> Counter -> output }\n");
    for k in 1..60 {
        text.push_str(&format!(
            "elementclass C{k} {{ input -> C{} -> output }}\n",
            k - 1
        ));
    }
    text.push_str("Idle -> C59 -> Discard;");
    let c = ok(&text);
    assert_eq!(c.elements.len(), 3);
    assert_eq!(c.connections.len(), 2);
    // Exponential expansion is cut off with an error.
    let mut text = String::from("elementclass C0 { input -> Counter -> output }\n");
    for k in 1..40 {
        text.push_str(&format!(
            "elementclass C{k} {{ input -> C{p} -> C{p} -> output }}\n",
            p = k - 1
        ));
    }
    text.push_str("Idle -> C39 -> Discard;");
    let e = err(&text);
    assert!(e.message.contains("too many elements"), "{}", e.message);
    // Long passthrough chains resolve without recursion.
    let mut text = String::from("elementclass T { input -> output }\nIdle");
    for _ in 0..5000 {
        text.push_str(" -> T");
    }
    text.push_str(" -> Discard;");
    let c = ok(&text);
    assert_eq!(conns(&c), [conn("Idle@1", 0, "Discard@5002", 0)]);
    // Passthrough loops terminate.
    let c = ok("elementclass T { input -> output }\nt :: T; t -> t; Idle -> t -> Discard;");
    assert_eq!(conns(&c), [conn("Idle@2", 0, "Discard@3", 0)]);
}

/// Every kind of configuration error renders as a report that names the
/// file, line and column, quotes the offending line, labels the spot (and
/// a related one where there is one) and says how to fix it.
#[test]
fn show_renders() {
    let cases: [(&str, &[&str]); 6] = [
        (
            "a :: Idle;\nb :: Idle;\nc :: Countr(1);\nd :: Idle;\n",
            &[
                "unknown element class `Countr`",
                "test.click:3:6",
                "c :: Countr(1);",
                "did you mean `Counter`?",
            ],
        ),
        (
            "define($LENGTH 14);\nx :: Strip($LENGHT);",
            &[
                "unknown variable `$LENGHT`",
                "test.click:2:12",
                "did you mean `$LENGTH`?",
            ],
        ),
        (
            "a :: Idle;\na :: Discard;",
            &[
                "element `a` redeclared",
                "test.click:2:1",
                "first declared here",
                "a :: Idle;",
            ],
        ),
        (
            "elementclass P {\n  input -> output;\n}\np :: P;\nIdle -> [2]p;",
            &[
                "compound `P` has no input port 2",
                "test.click:5:9",
                "compound class defined here",
                "`P` has 1 input port (input[0])",
            ],
        ),
        (
            "elementclass C { $a, $b | input -> output }\nIdle -> C(1) -> Discard;",
            &[
                "compound class `C` takes 2 arguments, but 1 was given",
                "test.click:2:11",
                "parameters: $a, $b",
            ],
        ),
        (
            "a :: Idle\nb :: Discard;",
            &["expected `;` or `->`, found `b`", "test.click:2:1"],
        ),
    ];
    for (text, want) in cases {
        let shown = err(text).render(&src(text), false);
        for w in want {
            assert!(shown.contains(w), "{text:?}: no {w:?} in\n{shown}");
        }
        // Plain text when colour is off.
        assert!(
            !shown.contains('\u{1b}'),
            "{text:?}: escape codes in\n{shown}"
        );
    }
}
