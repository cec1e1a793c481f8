//! PromQL text: quoted strings, regular expressions, durations, selectors.

use std::fmt::Write as _;
use std::time::Duration;

/// `value` as a PromQL double-quoted string literal.
pub(crate) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `literal` as an RE2 regular expression that matches exactly it.
pub(crate) fn regex_escape(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len() + 4);
    for c in literal.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A Prometheus duration (`30d`, `1h12m`, `500ms`): the largest units first, down to
/// milliseconds (a remainder below a millisecond is dropped).
pub(crate) fn duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            let _ = write!(out, "{}{unit}", ms / size);
            ms %= size;
        }
    }
    out
}

/// A number as PromQL and people read it: `0.999`, `14.4`, `6`.
pub(crate) fn number(value: f64) -> String {
    format!("{value}")
}

/// A fraction as a percentage with at most four decimals: `0.999` → `99.9%`.
pub(crate) fn percent(fraction: f64) -> String {
    let text = format!("{:.4}", fraction * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// The label matchers of a selector, rendered `{a="b",c=~"d|e"}` (nothing when empty).
#[derive(Clone, Debug, Default)]
pub(crate) struct Matchers(Vec<String>);

impl Matchers {
    /// `name="value"`.
    pub(crate) fn equal(mut self, name: &str, value: &str) -> Self {
        self.0.push(format!("{name}={}", quote(value)));
        self
    }

    /// `name="v"` for one value, `name=~"v1|v2"` for several (each matched literally);
    /// nothing for none.
    pub(crate) fn any_of(self, name: &str, values: &[String]) -> Self {
        match values {
            [] => self,
            [one] => self.equal(name, one),
            many => {
                let alternatives: Vec<String> = many.iter().map(|v| regex_escape(v)).collect();
                let mut this = self;
                this.0
                    .push(format!("{name}=~{}", quote(&alternatives.join("|"))));
                this
            }
        }
    }

    /// `name=~"pattern"` with `pattern` as given (a dashboard variable).
    pub(crate) fn regex(mut self, name: &str, pattern: &str) -> Self {
        self.0.push(format!("{name}=~{}", quote(pattern)));
        self
    }

    /// `metric{…}`.
    pub(crate) fn select(&self, metric: &str) -> String {
        if self.0.is_empty() {
            metric.to_owned()
        } else {
            format!("{metric}{{{}}}", self.0.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_the_largest_units_first() {
        let cases = [
            (Duration::from_secs(30 * 86_400), "30d"),
            (Duration::from_secs(3 * 86_400) / 60, "1h12m"),
            (Duration::from_secs(300), "5m"),
            (Duration::from_secs(300) / 60, "5s"),
            (Duration::from_millis(1_500), "1s500ms"),
            (Duration::from_secs(3_600), "1h"),
            (Duration::ZERO, "0s"),
        ];
        for (d, want) in cases {
            assert_eq!(duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn strings_and_regular_expressions_are_escaped() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(regex_escape("/users/{id}.json"), r"/users/\{id\}\.json");
        let m = Matchers::default()
            .equal("region", "eu")
            .any_of("http_route", &["/a/{id}".to_owned(), "/b".to_owned()]);
        assert_eq!(
            m.select("x_total"),
            r#"x_total{region="eu",http_route=~"/a/\\{id\\}|/b"}"#
        );
        assert_eq!(Matchers::default().select("x"), "x");
    }

    #[test]
    fn percentages_drop_trailing_zeros() {
        assert_eq!(percent(0.999), "99.9%");
        assert_eq!(percent(0.99), "99%");
        assert_eq!(percent(0.0144), "1.44%");
        assert_eq!(percent(0.99999), "99.999%");
    }
}
