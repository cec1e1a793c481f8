//! The in-flight gauge, `http_server_active_requests`.

use std::sync::atomic::Ordering;

use metrics::KeyName;

use super::text::render_labels;
use crate::Method;

/// The in-flight gauge: a count per method.
pub(super) struct ActiveGauge {
    pub(super) name: KeyName,
    pub(super) counts: [std::sync::atomic::AtomicI64; Method::ALL.len()],
    /// Each method's labels, rendered once.
    pub(super) labels: Vec<String>,
}

impl ActiveGauge {
    pub(super) fn new(name: KeyName, global: &[(String, String)]) -> Self {
        let labels = Method::ALL
            .iter()
            .map(|method| {
                let own = std::iter::once(("http_request_method", method.as_str()));
                render_labels(own.chain(global.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
            })
            .collect();
        ActiveGauge {
            name,
            counts: Default::default(),
            labels,
        }
    }

    pub(super) fn render_into(&self, out: &mut String) {
        let name = self.name.as_str();
        out.push_str("# HELP ");
        out.push_str(name);
        out.push_str(
            " Number of HTTP server requests in flight (response body not yet ended).\n# TYPE ",
        );
        out.push_str(name);
        out.push_str(" gauge\n");
        let mut number = itoa::Buffer::new();
        for (count, labels) in self.counts.iter().zip(&self.labels) {
            out.push_str(name);
            out.push('{');
            out.push_str(labels);
            out.push_str("} ");
            out.push_str(number.format(count.load(Ordering::Relaxed)));
            out.push('\n');
        }
        out.push('\n');
    }
}
