//! The route templates of requests, read from actix-web: [`Routes`] and [`PendingRoute`].
//!
//! actix-web names the resource a request was routed to only through
//! `HttpRequest::match_pattern()`, which builds a new `String` on every call (the patterns of
//! the resource and of its enclosing scopes, joined). [`Routes::with_template`] asks it once per
//! resource and then finds the template by what routing left in the request: its path and its
//! captured parameters. A parameter's name is text that actix-router allocated once for the
//! resource definition it belongs to and never frees, so where its bytes live tells the
//! definitions apart (`/n/{id:\d+}` and `/n/{id}` give the same text but not the same names).
//! So a request's key is its path with each parameter value replaced by where its name lives:
//! two requests with the same key went through the same parameterised definitions, with the
//! same literal text between them.
//!
//! A template is remembered only when it derives that key back: its literal parts are the
//! path's text between the parameters, and its parameters are the request's, in order. For a
//! resource with one pattern, `match_pattern()` is exactly that, so every request with the same
//! key gets the same template. A template that does not derive its key (a resource with several
//! patterns, whose template is its first one; a request that reached no resource; parameters
//! added by hand) is asked from actix every time, as before.

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use actix_web::dev::{Path, ResourceMap, ServiceRequest, Url};
use actix_web::HttpRequest;

/// Paths up to this long are kept inline in the response future, so that a request that ends
/// without a response can still be matched to its route; longer ones are matched on arrival.
pub(crate) const INLINE_PATH: usize = 64;

/// How many templates a worker remembers. Keys are bounded by the application's resources (a
/// key's literal text is text that routing matched literally); this bounds them whatever a
/// request carries.
const MEMO_CAPACITY: usize = 1024;

/// Marks a parameter in a key: a byte that UTF-8 text never holds. Where the parameter's name
/// lives follows it.
const PARAM: u8 = 0xFF;

/// A worker's copy of the application's resource map, and the templates found through it.
pub(crate) struct Routes {
    /// For requests that end without a response: their kept path is matched against it.
    ///
    /// actix lends the map only by reference, through a request. Keeping a request for it
    /// would keep its headers, extensions and app data alive for the life of the worker; a copy
    /// of the map made at the worker's first request holds none of them. The copy shares the
    /// resource nodes of the original and is used only to match paths, which it does exactly
    /// as the original (nested scopes joined through the nodes' links to their parents).
    map: ResourceMap,
    memo: RefCell<Memo>,
}

/// Templates by key, and the key of the request at hand (its bytes reused).
#[derive(Default)]
struct Memo {
    templates: hashbrown::HashMap<Box<[u8]>, Rc<str>>,
    key: Vec<u8>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("templates", &self.memo.borrow().templates.len())
            .finish_non_exhaustive()
    }
}

impl Routes {
    /// The worker's routes, made at its first request.
    pub(crate) fn of<'a>(cell: &'a OnceCell<Rc<Routes>>, req: &ServiceRequest) -> &'a Rc<Routes> {
        cell.get_or_init(|| {
            Rc::new(Routes {
                map: req.resource_map().clone(),
                memo: RefCell::default(),
            })
        })
    }

    /// Calls `f` with the route template of a request that actix has routed:
    /// `match_pattern()`'s, remembered by the request's key (see the module's documentation).
    pub(crate) fn with_template<R>(
        &self,
        req: &HttpRequest,
        f: impl FnOnce(Option<&str>) -> R,
    ) -> R {
        let info = req.match_info();
        let mut memo = self.memo.borrow_mut();
        let Memo { templates, key } = &mut *memo;
        if !fill(key, info) {
            drop(memo);
            return f(req.match_pattern().as_deref());
        }
        if let Some(template) = templates.get(key.as_slice()) {
            return f(Some(template));
        }
        let template = req.match_pattern();
        if let Some(template) = &template {
            if templates.len() < MEMO_CAPACITY && derives(template, info) {
                templates.insert(key.as_slice().into(), template.as_str().into());
            }
        }
        drop(memo);
        f(template.as_deref())
    }
}

/// Makes `key` the key of the path and parameters that routing left: the path, with each
/// parameter's value replaced by [`PARAM`] and where its name lives. `false` when a parameter
/// is not a part of the path (one added by hand).
fn fill(key: &mut Vec<u8>, info: &Path<Url>) -> bool {
    key.clear();
    let path = info.as_str();
    let mut at = 0;
    for (name, value) in info.iter() {
        match offset_in(path, value) {
            Some(start) if start >= at => {
                key.extend_from_slice(&path.as_bytes()[at..start]);
                key.push(PARAM);
                key.extend_from_slice(&name.as_ptr().addr().to_ne_bytes());
                at = start + value.len();
            }
            _ => return false,
        }
    }
    key.extend_from_slice(&path.as_bytes()[at..]);
    true
}

/// Where `part` starts in `path`, if it is a part of it.
fn offset_in(path: &str, part: &str) -> Option<usize> {
    let start = part.as_ptr().addr().checked_sub(path.as_ptr().addr())?;
    (part.len() <= path.len() && start <= path.len() - part.len()).then_some(start)
}

/// Whether `template` has the path's literal text between the request's parameters, and those
/// parameters in order: `{name}`, `{name:regex}`, and a tail's `{name}*`.
fn derives(template: &str, info: &Path<Url>) -> bool {
    let path = info.as_str();
    let mut rest = template;
    let mut at = 0;
    for (name, value) in info.iter() {
        let Some(start) = offset_in(path, value) else {
            return false;
        };
        let Some(after_literal) = path.get(at..start).and_then(|text| rest.strip_prefix(text))
        else {
            return false;
        };
        match parameter(after_literal) {
            Some((param, after)) if param == name => rest = after,
            _ => return false,
        }
        at = start + value.len();
    }
    path.get(at..) == Some(rest)
}

/// The name of the parameter that `text` starts with, and the text after it.
fn parameter(text: &str) -> Option<(&str, &str)> {
    let inner = text.strip_prefix('{')?;
    let mut depth = 1;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    let spec = &inner[..i];
                    let name = spec.split_once(':').map_or(spec, |(name, _)| name);
                    let after = &inner[i + 1..];
                    return Some((name, after.strip_prefix('*').unwrap_or(after)));
                }
            }
            _ => {}
        }
    }
    None
}

/// The path of a request whose route is read from its response, kept for the case where there
/// is none.
pub(crate) struct PendingRoute {
    path: [u8; INLINE_PATH],
    len: u8,
    routes: Rc<Routes>,
}

impl PendingRoute {
    pub(crate) fn new(path: &str, routes: &Rc<Routes>) -> Option<Self> {
        if path.len() > INLINE_PATH {
            return None;
        }
        let mut inline = [0; INLINE_PATH];
        inline[..path.len()].copy_from_slice(path.as_bytes());
        Some(PendingRoute {
            path: inline,
            len: path.len() as u8,
            routes: Rc::clone(routes),
        })
    }

    /// The route of the kept path, matched against the resource map.
    pub(crate) fn resolve(&self) -> Option<String> {
        let path = std::str::from_utf8(&self.path[..usize::from(self.len)]).ok()?;
        self.routes.map.match_pattern(path)
    }

    /// Calls `f` with the route template of the request, now routed (see
    /// [`Routes::with_template`]).
    pub(crate) fn routed<R>(self, req: &HttpRequest, f: impl FnOnce(Option<&str>) -> R) -> R {
        self.routes.with_template(req, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_read_with_their_regex_and_tail() {
        assert_eq!(parameter("{id}/x"), Some(("id", "/x")));
        assert_eq!(parameter(r"{id:\d+}/x"), Some(("id", "/x")));
        assert_eq!(parameter(r"{id:\d{3}}"), Some(("id", "")));
        assert_eq!(parameter("{tail}*"), Some(("tail", "")));
        assert_eq!(parameter("{tail:.*}"), Some(("tail", "")));
        assert_eq!(parameter("{open"), None);
        assert_eq!(parameter("id}"), None);
    }

    #[test]
    fn a_part_is_found_only_inside_the_path() {
        let path = String::from("/users/42");
        assert_eq!(offset_in(&path, &path[7..]), Some(7));
        assert_eq!(offset_in(&path, &path[9..]), Some(9));
        let elsewhere = String::from("42");
        assert_eq!(offset_in(&path, &elsewhere), None);
    }
}

#[cfg(test)]
mod with_actix {
    use std::cell::{Cell, OnceCell};
    use std::rc::Rc;

    use actix_web::dev::Service;
    use actix_web::{test, web, App, HttpResponse};

    use super::Routes;

    async fn ok() -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    /// Every request's template from the memo is `match_pattern()`'s, on the first request
    /// with its key (asked from actix) and on the later ones (remembered where it may be).
    #[actix_web::test]
    async fn remembered_templates_are_those_actix_gives() {
        let cell: Rc<OnceCell<Rc<Routes>>> = Rc::default();
        let remembered = Rc::new(Cell::new(0usize));
        let app = test::init_service({
            let cell = Rc::clone(&cell);
            App::new()
                .wrap_fn(move |req, srv| {
                    let routes = Rc::clone(Routes::of(&cell, &req));
                    let call = srv.call(req);
                    async move {
                        let response = call.await?;
                        let expected = response.request().match_pattern();
                        let got = routes
                            .with_template(response.request(), |route| route.map(str::to_owned));
                        assert_eq!(got, expected, "{}", response.request().path());
                        Ok(response)
                    }
                })
                .route("/plain", web::get().to(ok))
                .route("/users/{id}", web::get().to(ok))
                .route(r"/n/{id:\d+}", web::get().to(ok))
                .route("/n/{id}", web::get().to(ok))
                .route("/files/{tail}*", web::get().to(ok))
                .route("/only-post/{id}", web::post().to(ok))
                .service(web::resource(["/first/{a}", "/second/{a}"]).to(ok))
                .service(web::resource(["/one", "/two"]).to(ok))
                .service(
                    web::scope("/t/{tenant}")
                        .route("/a", web::get().to(ok))
                        .route("/b", web::get().to(ok))
                        .route("/items/{item}", web::get().to(ok)),
                )
                .service(web::scope("/api").route("", web::get().to(ok)))
        })
        .await;
        let paths = [
            "/plain",
            "/users/1",
            "/users/two",
            "/n/42",
            "/n/x",
            "/files/a/b/c.txt",
            "/files/",
            "/only-post/3",
            "/first/1",
            "/second/2",
            "/one",
            "/two",
            "/t/acme/a",
            "/t/acme/b",
            "/t/other/a",
            "/t/acme/items/9",
            "/t/acme/nothing",
            "/api",
            "/no/such/route",
            "/users/%41",
        ];
        for round in 0..3 {
            for path in paths {
                let request = test::TestRequest::get().uri(path).to_request();
                let _ = test::call_service(&app, request).await;
                let request = test::TestRequest::post().uri(path).to_request();
                let _ = test::call_service(&app, request).await;
            }
            let routes = cell.get().expect("made at the first request");
            remembered.set(routes.memo.borrow().templates.len());
            assert!(round == 0 || remembered.get() > 0);
        }
        // The parameterised routes (one key each: the values do not count) and the plain ones;
        // of a resource with two patterns, only its first (its template is its first pattern);
        // not the unmatched paths.
        let routes = cell.get().unwrap();
        let mut templates: Vec<String> = routes
            .memo
            .borrow()
            .templates
            .values()
            .map(|t| t.to_string())
            .collect();
        templates.sort();
        assert_eq!(
            templates,
            [
                "/api",
                "/files/{tail}*",
                "/first/{a}",
                r"/n/{id:\d+}",
                "/n/{id}",
                "/one",
                "/only-post/{id}",
                "/plain",
                "/t/{tenant}/a",
                "/t/{tenant}/b",
                "/t/{tenant}/items/{item}",
                "/users/{id}",
            ]
        );
    }
}
