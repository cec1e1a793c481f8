//! `Monitor`'s answer to each endpoint: `/metrics`, `/health` and its parts, `/stats`, the
//! annotations and the status page (their own modules build the bodies), and dispatch by
//! [`Endpoint`].

use serde_json::{json, Map, Value};

use super::{
    Endpoint, EndpointBody, EndpointRequest, EndpointResponse, HEALTH_JSON_CONTENT_TYPE,
    JSON_CONTENT_TYPE, LIVENESS_STALL, NO_STORE, TEXT_CONTENT_TYPE,
};
use crate::health::{ComponentStatus, Level};
use crate::Monitor;

/// 404: the endpoint needs a feature this build lacks.
#[cfg(not(feature = "status"))]
fn without_feature(feature: &'static str) -> EndpointResponse {
    EndpointResponse {
        status: 404,
        content_type: TEXT_CONTENT_TYPE,
        headers: vec![NO_STORE],
        body: format!("vitalsign: built without the `{feature}` feature\n").into_bytes(),
    }
}

fn status_for(level: Level) -> u16 {
    if level == Level::Unavailable {
        503
    } else {
        200
    }
}

fn component_json(status: &ComponentStatus) -> Value {
    let mut object = Map::new();
    object.insert("level".into(), status.level.as_str().into());
    object.insert("summary".into(), status.summary.clone().into());
    if let Some(detail) = &status.detail {
        object.insert("detail".into(), detail.clone().into());
    }
    if let Some(meta) = &status.meta {
        object.insert("meta".into(), meta.clone());
    }
    object.insert("critical".into(), status.critical.into());
    Value::Object(object)
}

fn wants_ietf(accept: Option<&[u8]>) -> bool {
    accept.is_some_and(|a| {
        a.windows(HEALTH_JSON_CONTENT_TYPE.len())
            .any(|w| w.eq_ignore_ascii_case(HEALTH_JSON_CONTENT_TYPE.as_bytes()))
    })
}

impl Monitor {
    /// The endpoints to mount and their paths ([`MonitorBuilder::endpoints`](crate::MonitorBuilder::endpoints);
    /// by default [`Endpoint::ALL`]), in the order to mount them. Adapters' routers and the
    /// admin listener serve exactly these.
    pub fn endpoint_routes(&self) -> &[(Box<str>, Endpoint)] {
        self.endpoint_table()
    }

    /// Answers a GET (or HEAD) of `endpoint`; `path` is the request path, with its query
    /// string if any (`/annotations/deploys?since=…`); the component or stream name is its last
    /// segment.
    pub fn serve_endpoint(
        &self,
        endpoint: Endpoint,
        path: &str,
        request: &EndpointRequest<'_>,
    ) -> EndpointResponse {
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        match endpoint {
            Endpoint::Metrics => self.metrics_endpoint(request),
            Endpoint::Health => self.health_endpoint(request, None),
            Endpoint::Live => self.live_endpoint(),
            Endpoint::Ready => self.ready_endpoint(),
            Endpoint::Component => {
                let name = path.rsplit('/').next().unwrap_or_default();
                self.health_endpoint(request, Some(name))
            }
            Endpoint::Stats => self.stats_endpoint(request),
            Endpoint::Annotations => self.annotations_endpoint(request),
            Endpoint::AnnotationStream => {
                let stream = path.rsplit('/').next().unwrap_or_default();
                self.annotation_stream_endpoint(request, stream, query)
            }
            Endpoint::Status => self.status_page_endpoint(),
            Endpoint::StatusData => self.status_data_endpoint(request),
        }
    }

    /// Answers a POST to `endpoint` with `body` (see [`EndpointBody`] for how adapters read
    /// it): `POST /annotations/{stream}` ([`Monitor::post_annotation_endpoint`]); 405 for an
    /// endpoint that takes no body ([`Endpoint::takes_body`]).
    ///
    /// ```
    /// use vitalsign_core::endpoint::{Endpoint, EndpointBody, EndpointRequest};
    /// use vitalsign_core::Monitor;
    ///
    /// let monitor = Monitor::builder("shop").token("s3cret").build().unwrap();
    /// let mut body = EndpointBody::new();
    /// body.push(br#"{"title": "v1.4.2 rolled out"}"#);
    /// let request = EndpointRequest { authorization: Some(b"Bearer s3cret"), accept: None };
    /// let page = monitor.serve_endpoint_post(Endpoint::AnnotationStream, "/annotations/deploys", &request, &body);
    /// assert_eq!(page.status, 201);
    /// let page = monitor.serve_endpoint_post(Endpoint::Metrics, "/metrics", &request, &body);
    /// assert_eq!(page.status, 405);
    /// ```
    pub fn serve_endpoint_post(
        &self,
        endpoint: Endpoint,
        path: &str,
        request: &EndpointRequest<'_>,
        body: &EndpointBody,
    ) -> EndpointResponse {
        let path = path.split_once('?').map_or(path, |(path, _)| path);
        match endpoint {
            Endpoint::AnnotationStream => {
                let stream = path.rsplit('/').next().unwrap_or_default();
                self.post_annotation_endpoint(request, stream, body)
            }
            _ => EndpointResponse {
                status: 405,
                content_type: TEXT_CONTENT_TYPE,
                headers: vec![("allow", "GET, HEAD"), NO_STORE],
                body: "vitalsign: this endpoint answers GET and HEAD only\n".into(),
            },
        }
    }

    /// `GET /stats`: the statistics document (see [`crate::stats`]); 401 without the token
    /// when one is configured; 404 with a reason without the `stats` feature.
    pub fn stats_endpoint(&self, request: &EndpointRequest<'_>) -> EndpointResponse {
        if !self.authorized(request) {
            return EndpointResponse::unauthorized(request);
        }
        #[cfg(feature = "stats")]
        return EndpointResponse::json(200, JSON_CONTENT_TYPE, &self.stats_json());
        #[cfg(not(feature = "stats"))]
        EndpointResponse {
            status: 404,
            content_type: TEXT_CONTENT_TYPE,
            headers: vec![NO_STORE],
            body: "vitalsign: built without the `stats` feature\n".into(),
        }
    }

    /// `GET /status`: the HTML status page (see `vitalsign_core::status`), served to anyone
    /// (it holds no figures: it reads them from `/status/data` under the token rules); 404
    /// with a reason without the `status` feature.
    pub fn status_page_endpoint(&self) -> EndpointResponse {
        #[cfg(feature = "status")]
        return EndpointResponse {
            status: 200,
            content_type: crate::status::HTML_CONTENT_TYPE,
            headers: vec![
                NO_STORE,
                ("content-security-policy", crate::status::PAGE_CSP),
                ("x-content-type-options", "nosniff"),
                ("referrer-policy", "no-referrer"),
            ],
            body: self.status_page().into_bytes(),
        };
        #[cfg(not(feature = "status"))]
        without_feature("status")
    }

    /// `GET /status/data`: the status page's JSON document (see `vitalsign_core::status`).
    /// Anonymous callers of a monitor with a token get the overall level only (as `/health`);
    /// a caller whose `Authorization` header does not carry the token gets the same with a
    /// 401 that says so. 404 with a reason without the `status` feature.
    pub fn status_data_endpoint(&self, request: &EndpointRequest<'_>) -> EndpointResponse {
        #[cfg(feature = "status")]
        return self.status_data(request);
        #[cfg(not(feature = "status"))]
        {
            let _ = request;
            without_feature("status")
        }
    }

    pub(crate) fn authorized(&self, request: &EndpointRequest<'_>) -> bool {
        self.token()
            .is_none_or(|token| token.authorizes(request.authorization))
    }

    /// `GET /metrics`: the exposition text, in the format the `Accept` header negotiates
    /// ([`ExpositionFormat::negotiate`](crate::prometheus::ExpositionFormat::negotiate):
    /// OpenMetrics with exemplars when asked for, with the feature `native-histograms` the
    /// protobuf format when preferred, the classic text otherwise), with `Vary: accept`; 401
    /// without the token when one is configured; 404 with a reason when the monitor has no
    /// Prometheus sink.
    pub fn metrics_endpoint(&self, request: &EndpointRequest<'_>) -> EndpointResponse {
        if !self.authorized(request) {
            return EndpointResponse::unauthorized(request);
        }
        #[cfg(feature = "prometheus")]
        {
            let format = crate::prometheus::ExpositionFormat::negotiate(request.accept);
            if let Some(body) = self.render_metrics_as(format) {
                return EndpointResponse {
                    status: 200,
                    content_type: format.content_type(),
                    // Caches keep one answer per `Accept`: the format depends on it.
                    headers: vec![("vary", "accept")],
                    body,
                };
            }
        }
        EndpointResponse {
            status: 404,
            content_type: TEXT_CONTENT_TYPE,
            headers: Vec::new(),
            body: "vitalsign: this monitor has no Prometheus sink\n".into(),
        }
    }

    /// `GET /health` (`component: None`) or `GET /health/{component}`.
    ///
    /// `/health` answers 200 when available or degraded, 503 when a critical component is
    /// unavailable, in the Kibana status shape
    /// `{"name","version","status":{"overall":{"level","summary"},"statuses":{…}}}`, or in the
    /// IETF `application/health+json` format when the `Accept` header asks for it. With a
    /// token configured, an anonymous caller gets only the overall level. `/health/{component}`
    /// answers one component (503 when it is unavailable, 404 when unknown, 401 without the
    /// token).
    pub fn health_endpoint(
        &self,
        request: &EndpointRequest<'_>,
        component: Option<&str>,
    ) -> EndpointResponse {
        let snapshot = self.health();
        let authorized = self.authorized(request);
        let ietf = wants_ietf(request.accept);
        if let Some(name) = component {
            if !authorized {
                return EndpointResponse::unauthorized(request);
            }
            let Some(status) = snapshot.components.get(name) else {
                let body = json!({ "error": format!("no health component named {name:?}") });
                return EndpointResponse::json(404, JSON_CONTENT_TYPE, &body);
            };
            let body = if ietf {
                ietf_check(name, status)
            } else {
                component_json(status)
            };
            let content_type = if ietf {
                HEALTH_JSON_CONTENT_TYPE
            } else {
                JSON_CONTENT_TYPE
            };
            return EndpointResponse::json(status_for(status.level), content_type, &body);
        }
        let http_status = status_for(snapshot.overall);
        if ietf {
            let mut body = Map::new();
            body.insert("status".into(), snapshot.overall.ietf_status().into());
            body.insert("version".into(), self.version().into());
            body.insert("serviceId".into(), self.service().into());
            if authorized {
                body.insert("description".into(), snapshot.summary.clone().into());
                let mut checks = Map::new();
                for (name, status) in &snapshot.components {
                    checks.insert(name.clone(), json!([ietf_check(name, status)]));
                }
                body.insert("checks".into(), Value::Object(checks));
            }
            return EndpointResponse::json(
                http_status,
                HEALTH_JSON_CONTENT_TYPE,
                &Value::Object(body),
            );
        }
        let status = if authorized {
            let mut statuses = Map::new();
            for (name, status) in &snapshot.components {
                statuses.insert(name.clone(), component_json(status));
            }
            json!({
                "overall": { "level": snapshot.overall.as_str(), "summary": snapshot.summary },
                "statuses": statuses,
            })
        } else {
            json!({ "overall": { "level": snapshot.overall.as_str() } })
        };
        let body = json!({ "name": self.service(), "version": self.version(), "status": status });
        EndpointResponse::json(http_status, JSON_CONTENT_TYPE, &body)
    }

    /// `GET /health/live`: the process is alive and not stuck. Each call asks vitalsign's
    /// health thread for a round, which takes the monitor's locks; 503 once that thread has
    /// been busy without a pause for [`LIVENESS_STALL`] (stuck on a lock, in a check that
    /// blocks it, or ended), so a deadlock shows by the next probe. No dependency check is
    /// involved.
    pub fn live_endpoint(&self) -> EndpointResponse {
        let health = self.health_engine();
        health.poke();
        let stalled = health.stalled_for();
        let alive = stalled < LIVENESS_STALL;
        let body = json!({
            "level": if alive { "available" } else { "unavailable" },
            "summary": if alive {
                "alive".to_owned()
            } else if stalled == std::time::Duration::MAX {
                "stuck: the health thread has ended".to_owned()
            } else {
                format!(
                    "stuck: the health thread has been busy for {} ms without a pause",
                    stalled.as_millis()
                )
            },
        });
        EndpointResponse::json(if alive { 200 } else { 503 }, JSON_CONTENT_TYPE, &body)
    }

    /// `GET /health/ready`: 200 when ready for traffic; 503 until every critical check has
    /// reported once, while draining, or while a critical component is unavailable.
    pub fn ready_endpoint(&self) -> EndpointResponse {
        let snapshot = self.health();
        let reason = if snapshot.draining {
            "draining".to_owned()
        } else if !snapshot.pending.is_empty() {
            format!(
                "waiting for a first result from: {}",
                snapshot.pending.join(", ")
            )
        } else if snapshot.ready {
            "ready".to_owned()
        } else {
            let down: Vec<&str> = snapshot
                .components
                .iter()
                .filter(|(_, s)| s.critical && s.level == Level::Unavailable)
                .map(|(name, _)| name.as_str())
                .collect();
            format!("critical components unavailable: {}", down.join(", "))
        };
        let body = json!({ "ready": snapshot.ready, "summary": reason });
        EndpointResponse::json(
            if snapshot.ready { 200 } else { 503 },
            JSON_CONTENT_TYPE,
            &body,
        )
    }
}

fn ietf_check(name: &str, status: &ComponentStatus) -> Value {
    let mut check = Map::new();
    check.insert("componentId".into(), name.into());
    check.insert("status".into(), status.level.ietf_status().into());
    if status.level != Level::Available {
        check.insert("output".into(), status.summary.clone().into());
    }
    if let Some(value) = status
        .meta
        .as_ref()
        .and_then(|m| m.get("value"))
        .filter(|v| !v.is_null())
    {
        check.insert("observedValue".into(), value.clone());
    }
    Value::Object(check)
}

#[cfg(test)]
mod status_tests {
    use super::*;

    /// `/status` and `/status/data` are mounted whatever the features, as `/stats` is; without
    /// the `status` feature they answer 404 and say which feature is missing.
    #[test]
    fn status_endpoints_are_mounted_and_need_their_feature() {
        let monitor = Monitor::builder("s").build().unwrap();
        let paths: Vec<&str> = monitor
            .endpoint_routes()
            .iter()
            .map(|(p, _)| &**p)
            .collect();
        assert!(paths.contains(&"/status") && paths.contains(&"/status/data"));
        assert!(monitor.is_excluded("/status", None) && monitor.is_excluded("/status/data", None));
        for endpoint in [Endpoint::Status, Endpoint::StatusData] {
            let page = monitor.serve_endpoint(
                endpoint,
                endpoint.default_path(),
                &EndpointRequest::default(),
            );
            if cfg!(feature = "status") {
                assert_eq!(page.status, 200, "{endpoint:?}");
            } else {
                assert_eq!(page.status, 404, "{endpoint:?}");
                assert_eq!(
                    page.body,
                    b"vitalsign: built without the `status` feature\n"
                );
            }
        }
    }
}
