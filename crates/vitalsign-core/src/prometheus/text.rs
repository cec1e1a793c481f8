//! Exposition text: label escaping, collectors' own families, and the merge of rendered families.

/// Work done just before each render (process and runtime figures, custom stats): records
/// through the `metrics` facade, and writes what the facade cannot express.
pub(crate) type Collector = Box<dyn Fn(&mut Exposition<'_>) + Send + Sync>;

/// Metric families a collector writes itself, rendered after the recorder's series.
pub(crate) struct Exposition<'a> {
    /// Family name and text.
    pub(super) families: Vec<(String, String)>,
    /// The global labels, rendered.
    pub(super) global_labels: &'a str,
}

impl Exposition<'_> {
    /// A counter with a fractional value (the facade's counters hold whole numbers).
    #[cfg_attr(not(feature = "stats"), allow(dead_code))]
    pub(crate) fn fractional_counter(&mut self, name: &'static str, help: &str, value: f64) {
        let labels = if self.global_labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", self.global_labels)
        };
        let text =
            format!("# HELP {name} {help}\n# TYPE {name} counter\n{name}{labels} {value}\n\n");
        self.families.push((name.to_owned(), text));
    }

    /// A family of `kind` (`counter`, `gauge`) with one sample per label set (`None`: no
    /// label of its own); the global labels are added. Nothing without samples.
    pub(crate) fn family<'s>(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: impl Iterator<Item = (Option<(&'s str, &'s str)>, f64)>,
    ) {
        let mut text = format!("# HELP {name} {help}\n# TYPE {name} {kind}\n");
        let mut any = false;
        for (label, value) in samples {
            any = true;
            let mut labels = render_labels(label.into_iter());
            if !self.global_labels.is_empty() {
                if !labels.is_empty() {
                    labels.push(',');
                }
                labels.push_str(self.global_labels);
            }
            text.push_str(name);
            if !labels.is_empty() {
                text.push('{');
                text.push_str(&labels);
                text.push('}');
            }
            text.push(' ');
            text.push_str(&value.to_string());
            text.push('\n');
        }
        if any {
            text.push('\n');
            self.families.push((name.to_owned(), text));
        }
    }

    /// Appends the families that `rendered` (the recorder's text) does not have already: an
    /// application sharing its recorder may register the same family itself.
    pub(super) fn append_to(self, rendered: &mut String) {
        // The names `rendered` types, read once (not one search of the whole text per family).
        let typed: hashbrown::HashSet<String> = rendered
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE ")?.split(' ').next())
            .map(str::to_owned)
            .collect();
        for (name, text) in self.families {
            if !typed.contains(&name) {
                rendered.push_str(&text);
            }
        }
    }
}

/// The blocks of `text` between blank lines, as `text.split("\n\n")` gives them, found by
/// `memchr`'s vectorised substring search: `str::split` with a two-byte pattern walks every
/// byte, which was most of a render's time on a large registry (the duration family is one
/// block of many lines).
pub(super) fn blocks(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    memchr::memmem::find_iter(text.as_bytes(), b"\n\n")
        .map(Some)
        .chain(std::iter::once(None))
        .map(move |end| {
            let end = end.unwrap_or(text.len());
            let block = &text[start..end];
            start = end + 2;
            block
        })
}

/// One metric family of rendered exposition text (its block between blank lines).
pub(super) struct RenderedFamily<'a> {
    /// The name its `# TYPE` line gives (or its first line's, without one).
    pub(super) name: &'a str,
    block: &'a str,
    /// Whether its sample lines are to be sorted: the registry renders counters and gauges in
    /// hash order. Histogram and summary lines stay as they are (a series' lines go together,
    /// buckets in `le` order); the registry keeps those series in insertion order.
    pub(super) sort_samples: bool,
}

impl<'a> RenderedFamily<'a> {
    /// The families of `text`; `from_registry` sorts counter and gauge samples.
    pub(super) fn split(
        text: &'a str,
        from_registry: bool,
    ) -> impl Iterator<Item = RenderedFamily<'a>> {
        blocks(text)
            .map(|block| block.trim_matches('\n'))
            .filter(|block| !block.is_empty())
            .map(move |block| {
                let typed = block.lines().find_map(|line| {
                    let mut words = line.strip_prefix("# TYPE ")?.split(' ');
                    Some((words.next()?, words.next()?))
                });
                let name = typed.map_or_else(
                    || {
                        let first = block.lines().next().unwrap_or_default();
                        let first = first.strip_prefix("# HELP ").unwrap_or(first);
                        first.split([' ', '{']).next().unwrap_or_default()
                    },
                    |(name, _)| name,
                );
                let kind = typed.map_or("untyped", |(_, kind)| kind);
                RenderedFamily {
                    name,
                    block,
                    sort_samples: from_registry && matches!(kind, "counter" | "gauge" | "untyped"),
                }
            })
    }

    /// Appends the family and the blank line that ends it.
    pub(super) fn write_into(&self, out: &mut String) {
        if self.sort_samples {
            let (comments, mut samples): (Vec<&str>, Vec<&str>) =
                self.block.lines().partition(|line| line.starts_with('#'));
            samples.sort_unstable();
            for line in comments.into_iter().chain(samples) {
                out.push_str(line);
                out.push('\n');
            }
        } else {
            out.push_str(self.block);
            out.push('\n');
        }
        out.push('\n');
    }
}

/// Escapes a label value for the text format.
fn escape_label(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `k="v",…` for these label names and values, then the global labels.
pub(super) fn render_labels<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (key, value) in pairs {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(key);
        out.push_str("=\"");
        escape_label(value, &mut out);
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::blocks;

    #[test]
    fn blocks_are_what_splitting_on_a_blank_line_gives() {
        let pieces = ["a", "b c", "\n", "\n\n", "# TYPE x counter\nx 1", ""];
        let mut texts = vec![String::new()];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    texts.push(format!("{a}{b}{c}"));
                    texts.push(format!("{a}\n\n{b}\n{c}\n\n"));
                }
            }
        }
        for text in &texts {
            assert_eq!(
                blocks(text).collect::<Vec<_>>(),
                text.split("\n\n").collect::<Vec<_>>(),
                "{text:?}"
            );
        }
    }
}
