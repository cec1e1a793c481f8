//! The Grafana dashboard: JSON in the schema Grafana 10 and 11 import.

use serde_json::{json, Value};

use super::promql::{duration, number};
use super::rules::Queries;
use super::{SloSpec, BURN_ALERTS};
use crate::prometheus::{
    ACTIVE_REQUESTS, ANNOTATION_LAST_TIMESTAMP, DISCONNECTS, ERRORS, HEALTH_STATUS,
    REQUEST_DURATION,
};

/// The data source every panel and query uses: the dashboard's variable.
fn datasource() -> Value {
    json!({ "type": "prometheus", "uid": "${datasource}" })
}

/// Grafana's grid is 24 columns wide; panels are placed left to right, then down.
struct Grid {
    x: u32,
    y: u32,
    row_height: u32,
}

impl Grid {
    fn place(&mut self, w: u32, h: u32) -> Value {
        if self.x + w > 24 {
            self.x = 0;
            self.y += self.row_height;
            self.row_height = 0;
        }
        let pos = json!({ "x": self.x, "y": self.y, "w": w, "h": h });
        self.x += w;
        self.row_height = self.row_height.max(h);
        pos
    }

    fn new_row(&mut self) -> Value {
        if self.x > 0 {
            self.y += self.row_height;
        }
        self.x = 0;
        self.row_height = 0;
        let pos = json!({ "x": 0, "y": self.y, "w": 24, "h": 1 });
        self.y += 1;
        pos
    }
}

struct Panels {
    grid: Grid,
    list: Vec<Value>,
}

impl Panels {
    fn row(&mut self, title: &str) {
        let pos = self.grid.new_row();
        let id = self.list.len() + 1;
        self.list.push(json!({
            "id": id,
            "type": "row",
            "title": title,
            "collapsed": false,
            "gridPos": pos,
            "panels": [],
        }));
    }

    /// A panel of `kind` with `targets` (expression, legend) and field defaults.
    fn add(
        &mut self,
        kind: &str,
        title: &str,
        (w, h): (u32, u32),
        targets: &[(String, &str)],
        defaults: Value,
    ) {
        let pos = self.grid.place(w, h);
        let id = self.list.len() + 1;
        let targets: Vec<Value> = targets
            .iter()
            .enumerate()
            .map(|(i, (expr, legend))| {
                json!({
                    "refId": char::from(b'A' + i as u8).to_string(),
                    "datasource": datasource(),
                    "expr": expr,
                    "legendFormat": legend,
                    "range": true,
                })
            })
            .collect();
        self.list.push(json!({
            "id": id,
            "type": kind,
            "title": title,
            "gridPos": pos,
            "datasource": datasource(),
            "targets": targets,
            "fieldConfig": { "defaults": defaults, "overrides": [] },
            "options": {
                "legend": { "showLegend": true, "displayMode": "list", "placement": "bottom" },
                "tooltip": { "mode": "multi", "sort": "desc" },
            },
        }));
    }
}

pub(super) fn render(spec: &SloSpec) -> String {
    let metric = |base: &str| spec.metric(base);
    let by_route = spec.global_matchers().regex("http_route", "$route");
    let count = by_route.select(&metric(&format!("{REQUEST_DURATION}_count")));
    let bucket = by_route.select(&metric(&format!("{REQUEST_DURATION}_bucket")));
    let errors = by_route.select(&metric(ERRORS));
    let disconnects = by_route.select(&metric(DISCONNECTS));
    let global = spec.global_matchers();
    let rate =
        |selector: &str, by: &str| format!("sum by ({by}) (rate({selector}[$__rate_interval]))");
    let mut panels = Panels {
        grid: Grid {
            x: 0,
            y: 0,
            row_height: 0,
        },
        list: Vec::new(),
    };
    panels.row("Requests");
    panels.add(
        "timeseries",
        "Request rate by route",
        (12, 8),
        &[(rate(&count, "http_route"), "{{http_route}}")],
        json!({ "unit": "reqps" }),
    );
    panels.add(
        "timeseries",
        "Error ratio by route",
        (12, 8),
        &[(
            format!(
                "{}\n/\n{}",
                rate(&errors, "http_route"),
                rate(&count, "http_route")
            ),
            "{{http_route}}",
        )],
        json!({ "unit": "percentunit", "min": 0 }),
    );
    let quantiles: Vec<(String, &str)> = [("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99")]
        .into_iter()
        .map(|(q, legend)| {
            (
                format!(
                    "histogram_quantile({q}, {})",
                    rate(&bucket, "http_route, le")
                ),
                match legend {
                    "p50" => "p50 {{http_route}}",
                    "p90" => "p90 {{http_route}}",
                    _ => "p99 {{http_route}}",
                },
            )
        })
        .collect();
    panels.add(
        "timeseries",
        "Latency p50 / p90 / p99 by route",
        (12, 8),
        &quantiles,
        json!({ "unit": "s", "min": 0 }),
    );
    panels.add(
        "timeseries",
        "In-flight requests",
        (6, 8),
        &[(
            format!(
                "sum by (http_request_method) ({})",
                global.select(&metric(ACTIVE_REQUESTS))
            ),
            "{{http_request_method}}",
        )],
        json!({ "unit": "short", "min": 0 }),
    );
    panels.add(
        "timeseries",
        "Disconnects (client gone before the response ended)",
        (6, 8),
        &[(rate(&disconnects, "http_route"), "{{http_route}}")],
        json!({ "unit": "reqps", "min": 0 }),
    );
    panels.row("Health");
    panels.add(
        "state-timeline",
        "Health per component",
        (24, 6),
        &[(
            format!(
                "max by (component) ({})",
                global.select(&metric(HEALTH_STATUS))
            ),
            "{{component}}",
        )],
        json!({
            "min": 0,
            "max": 2,
            "mappings": [{
                "type": "value",
                "options": {
                    "0": { "text": "unavailable", "color": "red", "index": 0 },
                    "1": { "text": "degraded", "color": "yellow", "index": 1 },
                    "2": { "text": "available", "color": "green", "index": 2 },
                },
            }],
            "color": { "mode": "thresholds" },
            "thresholds": {
                "mode": "absolute",
                "steps": [
                    { "color": "red", "value": null },
                    { "color": "yellow", "value": 1 },
                    { "color": "green", "value": 2 },
                ],
            },
        }),
    );
    for (name, objective) in &spec.objectives {
        let q = Queries::new(spec, name, objective);
        panels.row(&format!("Objective {name}: {}", objective.describe()));
        panels.add(
            "stat",
            &format!(
                "{name}: error budget remaining ({})",
                duration(objective.scaled(objective.period))
            ),
            (6, 8),
            &[(q.recorded("error_budget:remaining"), "remaining")],
            json!({
                "unit": "percentunit",
                "decimals": 1,
                "color": { "mode": "thresholds" },
                "thresholds": {
                    "mode": "absolute",
                    "steps": [
                        { "color": "red", "value": null },
                        { "color": "yellow", "value": 0.25 },
                        { "color": "green", "value": 0.5 },
                    ],
                },
            }),
        );
        let burns: Vec<(String, String)> = BURN_ALERTS
            .iter()
            .map(|alert| {
                let window = objective.scaled(alert.long);
                (
                    format!("{} / {}", q.recorded(&q.ratio_name(window)), q.budget()),
                    format!(
                        "over {} (alerts above {})",
                        duration(window),
                        number(alert.burn)
                    ),
                )
            })
            .collect();
        let burns: Vec<(String, &str)> = burns.iter().map(|(e, l)| (e.clone(), &**l)).collect();
        panels.add(
            "timeseries",
            &format!("{name}: burn rate (1 = the budget lasts exactly the period)"),
            (18, 8),
            &burns,
            json!({ "unit": "x", "min": 0 }),
        );
    }
    let uid: String = format!("vitalsign-{}", spec.service)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let route_query = format!(
        "label_values({}, http_route)",
        global.select(&metric(&format!("{REQUEST_DURATION}_count")))
    );
    let annotation_query = format!(
        "max by (stream) ({}) * 1000",
        global.select(&metric(ANNOTATION_LAST_TIMESTAMP))
    );
    let dashboard = json!({
        "uid": uid,
        "title": format!("{} (vitalsign)", spec.service),
        "description": format!(
            "Requests, health and service-level objectives of {}, generated by vitalsign {}.",
            spec.service,
            env!("CARGO_PKG_VERSION")
        ),
        "tags": ["vitalsign"],
        "timezone": "browser",
        "editable": true,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": { "from": "now-6h", "to": "now" },
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                },
                {
                    "name": "route",
                    "label": "Route",
                    "type": "query",
                    "datasource": datasource(),
                    "definition": route_query,
                    "query": { "query": route_query, "refId": "route" },
                    "current": {},
                    "includeAll": true,
                    "allValue": ".*",
                    "multi": true,
                    "refresh": 2,
                    "sort": 1,
                    "hide": 0,
                    "regex": "",
                },
            ],
        },
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": { "type": "grafana", "uid": "-- Grafana --" },
                    "enable": true,
                    "hide": true,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                {
                    // The latest event of each annotation stream (deploys, lifecycle, health),
                    // at its start: the gauge's value, in milliseconds, is the time.
                    "name": "vitalsign annotations",
                    "datasource": datasource(),
                    "enable": true,
                    "hide": false,
                    "iconColor": "rgba(255, 152, 48, 1)",
                    "expr": annotation_query,
                    "step": "60s",
                    "titleFormat": "{{stream}}",
                    "textFormat": "latest event of the annotation stream {{stream}}",
                    "tagKeys": "stream",
                    "useValueForTime": true,
                },
            ],
        },
        "panels": panels.list,
    });
    let mut text = serde_json::to_string_pretty(&dashboard).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Objective;

    #[test]
    fn panels_tile_the_grid_and_every_target_names_the_datasource_variable() {
        let spec = SloSpec {
            service: "shop/eu".to_owned(),
            namespace: Some("shop".to_owned()),
            global_labels: vec![("region".to_owned(), "eu".to_owned())],
            objectives: vec![("avail".to_owned(), Objective::availability(0.999))],
        };
        let d: Value = serde_json::from_str(&render(&spec)).unwrap();
        assert_eq!(d["uid"], "vitalsign-shop-eu");
        let panels = d["panels"].as_array().unwrap();
        let mut ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
        ids.dedup();
        assert_eq!(ids.len(), panels.len());
        for p in panels {
            let pos = &p["gridPos"];
            assert!(
                pos["x"].as_u64().unwrap() + pos["w"].as_u64().unwrap() <= 24,
                "{p}"
            );
            if p["type"] == "row" {
                continue;
            }
            for t in p["targets"].as_array().unwrap() {
                let expr = t["expr"].as_str().unwrap();
                assert_eq!(t["datasource"]["uid"], "${datasource}");
                if expr.contains("http_server") {
                    assert!(expr.contains("shop_http_server"), "{expr}");
                    assert!(expr.contains(r#"region="eu""#), "{expr}");
                }
                if expr.contains("rate(") {
                    assert!(expr.contains("[$__rate_interval]"), "{expr}");
                }
            }
        }
        assert!(panels
            .iter()
            .any(|p| p["title"].as_str().unwrap().contains("avail: burn rate")));
    }
}
