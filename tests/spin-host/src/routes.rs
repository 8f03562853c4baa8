//! HTTP route matching with Spin's semantics (`crates/http/src/routes.rs`),
//! built on the same `routefinder` crate Spin uses:
//!
//! * `/path` is exact, `/prefix/...` (or `/prefix/*`) a trailing wildcard,
//!   `:name` segments capture (`spin-path-match-<name>` headers);
//! * exact segments beat `:params` beat wildcards, segment by segment, so the
//!   longest matching wildcard prefix wins and exact routes beat wildcards;
//! * a trailing slash on a route is dropped; a duplicate route keeps the last
//!   component that declared it (Spin logs the duplicate);
//! * `{ private = true }` triggers get no route at all;
//! * `spin-path-info` keeps the request's trailing slash, as Spin does.

use anyhow::{anyhow, Result};

use crate::manifest::{HttpTrigger, RouteConfig};

#[derive(Debug, Clone)]
struct Handler {
    component: String,
    raw_route: String,
}

/// The application's router.
#[derive(Debug)]
pub struct Router {
    inner: routefinder::Router<Handler>,
    /// (display route, component) in manifest order, for startup output.
    listing: Vec<(String, String)>,
}

/// A successful match: what the Spin headers are computed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// The component to run.
    pub component: String,
    /// The route as written in the manifest (`spin-matched-route`,
    /// `spin-raw-component-route`).
    pub raw_route: String,
    /// The trailing-wildcard part of the path (`spin-path-info`).
    pub path_info: String,
    /// Named `:param` captures.
    pub params: Vec<(String, String)>,
}

impl RouteMatch {
    /// The match Spin synthesises for a service-chained request
    /// (`RouteMatch::synthetic`): route `/...`, the whole path as path-info.
    pub fn synthetic(component: &str, path: &str) -> Self {
        RouteMatch {
            component: component.to_owned(),
            raw_route: "/...".to_owned(),
            path_info: path.to_owned(),
            params: vec![],
        }
    }

    /// `spin-component-route`: the raw route without its `/...` suffix.
    pub fn component_route(&self) -> &str {
        self.raw_route
            .strip_suffix("/...")
            .unwrap_or(&self.raw_route)
    }
}

fn sanitize(route: &str) -> String {
    let abs = if route.starts_with('/') {
        route.to_owned()
    } else {
        format!("/{route}")
    };
    // Spin strips a single trailing slash.
    abs.strip_suffix('/').map(str::to_owned).unwrap_or(abs)
}

impl Router {
    /// Builds the router from the manifest's HTTP triggers.
    pub fn build(triggers: &[HttpTrigger]) -> Result<Self> {
        // Last declaration of a duplicated raw route wins; keep first position.
        let mut entries: Vec<(String, Handler)> = vec![];
        for t in triggers {
            let RouteConfig::Route(raw) = &t.route else {
                continue;
            };
            let handler = Handler {
                component: t.component.clone(),
                raw_route: raw.clone(),
            };
            match entries.iter_mut().find(|(r, _)| r == raw) {
                Some(existing) => {
                    eprintln!(
                        "spin-host: route {raw} of component {} is a duplicate and will never be used (duplicate of {})",
                        existing.1.component, t.component
                    );
                    existing.1 = handler;
                }
                None => entries.push((raw.clone(), handler)),
            }
        }
        let mut inner = routefinder::Router::new();
        let mut listing = vec![];
        for (raw, handler) in entries {
            let based = sanitize(&raw);
            let (spec, display) = if let Some(prefix) = based.strip_suffix("/...") {
                (format!("{prefix}/*"), format!("{prefix} (wildcard)"))
            } else if let Some(prefix) = based.strip_suffix("/*") {
                (based.clone(), format!("{prefix} (wildcard)"))
            } else {
                (based.clone(), based.clone())
            };
            listing.push((display, handler.component.clone()));
            inner
                .add(spec, handler)
                .map_err(|e| anyhow!("Error parsing route {raw} associated with component: {e}"))?;
        }
        Ok(Router { inner, listing })
    }

    /// Routes as Spin prints them under "Available Routes:", in order.
    pub fn listing(&self) -> &[(String, String)] {
        &self.listing
    }

    /// Matches a request path (no query).
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let m = self.inner.best_match(path)?;
        let handler = m.handler();
        let captures = m.captures();
        let path_info = captures
            .wildcard()
            .map(|s| match (s.is_empty(), path.ends_with('/')) {
                (true, false) => s.to_owned(),
                (true, true) => "/".to_owned(),
                (false, false) => format!("/{s}"),
                (false, true) => format!("/{s}/"),
            })
            .unwrap_or_default();
        let params = captures
            .iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        Some(RouteMatch {
            component: handler.component.clone(),
            raw_route: handler.raw_route.clone(),
            path_info,
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        let triggers: Vec<HttpTrigger> = routes
            .iter()
            .map(|(c, r)| HttpTrigger {
                component: c.to_string(),
                route: if *r == "private" {
                    RouteConfig::Private
                } else {
                    RouteConfig::Route(r.to_string())
                },
            })
            .collect();
        Router::build(&triggers).unwrap()
    }

    fn component(r: &Router, path: &str) -> Option<String> {
        r.route(path).map(|m| m.component)
    }

    #[test]
    fn exact_beats_wildcard() {
        let r = router(&[("wild", "/..."), ("exact", "/one")]);
        assert_eq!(component(&r, "/one").as_deref(), Some("exact"));
        assert_eq!(component(&r, "/one/two").as_deref(), Some("wild"));
        assert_eq!(component(&r, "/").as_deref(), Some("wild"));
    }

    #[test]
    fn longest_wildcard_prefix_wins_regardless_of_order() {
        let r = router(&[
            ("c3", "/one/two/three/..."),
            ("c1", "/one/..."),
            ("c2", "/one/two/..."),
        ]);
        assert_eq!(component(&r, "/one/two/three/four").as_deref(), Some("c3"));
        assert_eq!(component(&r, "/one/two/x").as_deref(), Some("c2"));
        assert_eq!(component(&r, "/one").as_deref(), Some("c1"));
        assert_eq!(component(&r, "/other"), None);
    }

    #[test]
    fn path_info_keeps_trailing_slash() {
        let r = router(&[("c", "/test/...")]);
        assert_eq!(r.route("/test").unwrap().path_info, "");
        assert_eq!(r.route("/test/").unwrap().path_info, "/");
        assert_eq!(r.route("/test/hello").unwrap().path_info, "/hello");
        assert_eq!(r.route("/test/hello/").unwrap().path_info, "/hello/");
        let root = router(&[("c", "/...")]);
        assert_eq!(root.route("/1/2/3").unwrap().path_info, "/1/2/3");
    }

    #[test]
    fn exact_route_ignores_trailing_slash_and_prefix_does_not_match() {
        let r = router(&[("c", "/health/grab")]);
        assert!(r.route("/health/grab").is_some());
        assert!(r.route("/health/grab/").is_some());
        assert!(r.route("/health/grab/x").is_none());
        assert!(r.route("/health").is_none());
    }

    #[test]
    fn named_params_are_captured() {
        let r = router(&[("c", "/users/:id/...")]);
        let m = r.route("/users/42/orders").unwrap();
        assert_eq!(m.params, vec![("id".to_owned(), "42".to_owned())]);
        assert_eq!(m.path_info, "/orders");
        assert_eq!(m.component_route(), "/users/:id");
    }

    #[test]
    fn private_routes_are_unroutable_and_duplicates_keep_last() {
        let r = router(&[("p", "private"), ("first", "/foo"), ("second", "/foo")]);
        assert_eq!(component(&r, "/foo").as_deref(), Some("second"));
        assert_eq!(r.listing().len(), 1);
    }

    #[test]
    fn synthetic_match_for_chaining() {
        let m = RouteMatch::synthetic("pay", "/payments/1");
        assert_eq!(m.raw_route, "/...");
        assert_eq!(m.component_route(), "");
        assert_eq!(m.path_info, "/payments/1");
    }
}
