//! Exclusion policy: which requests are not recorded, by path, route template or prefix.

use super::Monitor;
#[cfg(doc)]
use super::MonitorBuilder;

/// chosen with [`MonitorBuilder::endpoints`] are excluded instead when set).
pub const DEFAULT_EXCLUDED_PATHS: &[&str] = &[
    "/metrics",
    "/health",
    "/health/live",
    "/health/ready",
    "/health/{component}",
    "/stats",
    "/annotations",
    "/annotations/{stream}",
    "/status",
    "/status/data",
];

/// Up to this many excluded paths, exclusion is a linear scan (no hashing).
const SCAN_EXCLUSIONS: usize = 16;

/// The byte after a path's leading `/` (0 for a shorter path): with the length, what tells
/// most paths from the excluded ones without comparing them.
#[inline]
pub(super) fn second_byte(path: &str) -> u32 {
    u32::from(path.as_bytes().get(1).copied().unwrap_or(0))
}

impl Monitor {
    /// Whether a request to this path / route template is excluded from recording.
    #[inline]
    pub(crate) fn is_excluded(&self, path: &str, route: Option<&str>) -> bool {
        if self
            .inner
            .excluded_prefixes
            .iter()
            .any(|p| path.starts_with(&**p))
        {
            return true;
        }
        self.excluded_exactly(path) || route.is_some_and(|r| self.excluded_exactly(r))
    }

    /// Whether a request to `path` may be routed to an excluded route template (an excluded
    /// path with a `{parameter}`, such as `/health/{component}`). For an adapter that reads the
    /// route only after routing (actix-web): it resolves the route of such a request when the
    /// request arrives, so that the request is left out from its start (never in flight, never
    /// started in a sink), as with an adapter that knows its route from the start. Cheap, and
    /// false for most paths; may be true for a path that is routed elsewhere.
    pub(crate) fn may_route_to_excluded_template(&self, path: &str) -> bool {
        let templates = &self.inner.excluded_templates;
        !templates.is_empty()
            && ((self.inner.excluded_template_second_bytes & (1u64 << (second_byte(path) % 64))
                != 0
                && templates.iter().any(|t| t.may_route(path)))
                // The router may decode percent-escapes before matching: let it decide.
                || has_percent(path.as_bytes()))
    }

    /// Whether `candidate` (a path or a route) is one of the excluded paths.
    #[inline]
    pub(super) fn excluded_exactly(&self, candidate: &str) -> bool {
        if self.inner.excluded.len() > SCAN_EXCLUSIONS {
            return self.inner.excluded.contains(candidate);
        }
        // A handful of entries: bitmasks of their lengths and of their second bytes reject
        // most candidates at once, then a scan compares lengths before bytes; no hashing.
        self.inner.excluded_lengths & (1u64 << (candidate.len() % 64)) != 0
            && self.inner.excluded_second_bytes & (1u64 << (second_byte(candidate) % 64)) != 0
            && self
                .inner
                .excluded_list
                .iter()
                .any(|e| e.len() == candidate.len() && **e == *candidate)
    }
}

/// Whether `bytes` holds a `%`, eight bytes at a time: paths are short, and a byte loop (or
/// `str::contains`, through a char searcher) costs a compare and a branch per byte on every
/// request that actix-web serves.
fn has_percent(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const PERCENTS: u64 = u64::from_ne_bytes([b'%'; 8]);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut eight = [0; 8];
        eight.copy_from_slice(word);
        // A `%` byte is a zero byte of `x`; the classic test finds whether `x` has one.
        let x = u64::from_ne_bytes(eight) ^ PERCENTS;
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            return true;
        }
    }
    words.remainder().contains(&b'%')
}

/// An excluded route template and the length of its literal part (before the first
/// parameter), found once: most paths differ there.
#[derive(Debug)]
pub(super) struct ExcludedTemplate {
    template: Box<str>,
    literal: usize,
}

/// Bit `byte % 64` for the second byte of each template's literal part (the byte after the
/// leading `/`), all bits when a literal part is shorter (`/{x}`: any path may route there).
pub(super) fn template_second_bytes(templates: &[ExcludedTemplate]) -> u64 {
    templates.iter().fold(0, |mask, t| {
        if t.literal < 2 {
            u64::MAX
        } else {
            mask | 1u64 << (second_byte(&t.template) % 64)
        }
    })
}

impl ExcludedTemplate {
    /// `None` for an excluded path that is no template.
    pub(super) fn new(template: &str) -> Option<Self> {
        template.find('{').map(|literal| ExcludedTemplate {
            template: template.into(),
            literal,
        })
    }

    fn may_route(&self, path: &str) -> bool {
        path.as_bytes()
            .starts_with(&self.template.as_bytes()[..self.literal])
            && may_route_to(&self.template, path)
    }
}

/// Whether a router may route `path` to `template`, segment by segment: a segment with a
/// `{parameter}` matches any segment, one with a wildcard or a pattern (`{*rest}`, `{id:\d+}`)
/// any rest of the path; other segments match themselves.
fn may_route_to(template: &str, path: &str) -> bool {
    // Most paths differ in the literal part before the first parameter.
    let literal = template.find('{').map_or(template, |i| &template[..i]);
    if !path.starts_with(literal) {
        return false;
    }
    let mut segments = path.split('/');
    for expected in template.split('/') {
        let Some(segment) = segments.next() else {
            return false;
        };
        if expected.contains('{') {
            if expected.contains(['*', ':']) {
                return true;
            }
        } else if expected != segment {
            return false;
        }
    }
    segments.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::has_percent;
    use crate::monitor::tests::{monitor, start};

    #[test]
    fn exclusions_match_paths_and_templates() {
        let (monitor, sink) = monitor(|b| b.exclude_path("/internal/{x}"));
        assert!(monitor.begin(&start(b"GET", "/metrics", None)).is_none());
        assert!(monitor
            .begin(&start(b"GET", "/health/db", Some("/health/{component}")))
            .is_none());
        assert!(monitor
            .begin(&start(b"GET", "/internal/1", Some("/internal/{x}")))
            .is_none());
        assert_eq!(sink.started(), 0);
        let (monitor, _) = self::monitor(|b| b.monitor_own_endpoints(true));
        assert!(monitor
            .begin(&start(b"GET", "/metrics", Some("/metrics")))
            .is_some());
    }

    /// A template whose literal part is only `/` may take any path: the second-byte mask must
    /// not reject one.
    #[test]
    fn a_template_with_a_parameter_first_may_take_any_path() {
        let (monitor, _) = monitor(|b| b.exclude_path("/{tenant}/internal"));
        assert!(monitor.may_route_to_excluded_template("/acme/internal"));
        assert!(monitor.may_route_to_excluded_template("/x/internal"));
        assert!(!monitor.may_route_to_excluded_template("/acme/public"));
    }

    /// Review item 11: actix reads routes after routing, and asks this first.
    #[test]
    fn paths_that_may_be_routed_to_an_excluded_template() {
        let (monitor, _) = monitor(|b| {
            b.exclude_path("/files/{*rest}")
                .exclude_path("/n/{id:\\d+}/x")
                .exclude_path("/a/{x}.txt")
        });
        for path in [
            "/health/db",
            "/health/live",
            "/health/",
            "/files/a/b/c",
            "/n/12/x",
            "/n/12/y/z",
            "/a/report.txt",
            "/h%65alth/db",
        ] {
            assert!(monitor.may_route_to_excluded_template(path), "{path}");
        }
        for path in [
            "/users/42",
            "/health",
            "/healthz/db",
            "/health/db/more",
            "/files",
            "/n",
            "/a/b/c",
            "/",
        ] {
            assert!(!monitor.may_route_to_excluded_template(path), "{path}");
        }
        let (monitor, _) = self::monitor(|b| b.monitor_own_endpoints(true));
        assert!(!monitor.may_route_to_excluded_template("/health/db"));
        assert!(!monitor.may_route_to_excluded_template("/h%65alth/db"));
    }

    #[test]
    fn path_prefixes_are_excluded() {
        let (monitor, _) = monitor(|b| b.exclude_path("/internal/*"));
        assert!(monitor.is_excluded("/internal/metrics/x", None));
        assert!(monitor.is_excluded("/internal/", Some("/internal/{*rest}")));
        assert!(!monitor.is_excluded("/internals", None));
        assert!(!monitor.is_excluded("/users/1", Some("/users/{id}")));
    }

    #[test]
    fn has_percent_agrees_with_a_byte_scan() {
        let mut paths: Vec<Vec<u8>> = vec![Vec::new(), b"%".to_vec(), b"/users/42".to_vec()];
        for len in 0..40 {
            for at in 0..len {
                let mut path = vec![b'a'; len];
                path[at] = b'%';
                paths.push(path.clone());
                // Bytes next to `%` in value (`$`, `&`) and high bytes are no `%`.
                path[at] = [b'$', b'&', 0x80, 0xa5, 0xff][at % 5];
                paths.push(path);
            }
        }
        for path in paths {
            assert_eq!(has_percent(&path), path.contains(&b'%'), "{path:?}");
        }
    }
}
