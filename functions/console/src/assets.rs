//! The built app as HTTP answers: which file a `/console/...` path names, its content type
//! and how long it may be cached. [`resolve`] is pure; [`serve`] reads the file from the
//! component's `files` mount (the Vite build, `functions/console/dist`, mounted at `/`).

use anyhow::Context;
use htaxi_shared::platform::http::{self, RequestContext};
use htaxi_shared::problem::ApiError;
use spin_sdk::http::{Method, Request, Response};

/// Where spin.toml mounts the build.
const ROOT: &str = "/";

/// The policy every answer carries: only this origin's own script, style, images and API;
/// no inline script or style element, no plugins, no framing, no `<base>`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Headers on every console answer, files and problems alike.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
];

/// Vite names everything under `assets/` by its content hash: a changed file is a new name.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `index.html` names the current hashes, so it is revalidated on every load.
pub const NO_CACHE: &str = "no-cache";
/// Unhashed files copied from the app's `public/` (the icon): an hour.
pub const SHORT: &str = "public, max-age=3600";

/// A file to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// Its path inside the mount, e.g. `assets/index-3f2a.js`.
    pub file: String,
    pub content_type: &'static str,
    pub cache_control: &'static str,
}

/// The file the path after `/console` names. The app itself (`[]`, or a client-side route
/// such as `rider`, a last segment without a dot) is `index.html`; `assets/<name>` is a
/// hashed asset; anything with a hidden or parent segment names nothing (`None`: 404).
pub fn resolve(rest: &[&str]) -> Option<Asset> {
    let unsafe_segment = |s: &&str| s.starts_with('.') || s.contains('\\') || s.contains('\0');
    if rest.iter().any(unsafe_segment) {
        return None;
    }
    let index = || Asset {
        file: "index.html".to_owned(),
        content_type: content_type("index.html"),
        cache_control: NO_CACHE,
    };
    match rest {
        [] => Some(index()),
        [.., last] if !last.contains('.') => Some(index()),
        ["index.html"] => Some(index()),
        ["assets", name] => Some(Asset {
            file: format!("assets/{name}"),
            content_type: content_type(name),
            cache_control: IMMUTABLE,
        }),
        [name] => Some(Asset {
            file: (*name).to_owned(),
            content_type: content_type(name),
            cache_control: SHORT,
        }),
        _ => None,
    }
}

/// The media type for a file name, by its extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json" | "map") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `GET|HEAD /console/...`: the named file with its type and caching, or a 404.
pub fn serve(ctx: &RequestContext, req: &Request, rest: &[&str]) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("no console file at {}", req.path()));
    let asset = resolve(rest).ok_or_else(not_found)?;
    let body = match std::fs::read(format!("{ROOT}{}", asset.file)) {
        Ok(body) => body,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && asset.file != "index.html" => {
            return Err(not_found())
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("reading console file {}", asset.file))
                .into())
        }
    };
    // HEAD: the same headers, no body. No Content-Length of our own: the runtime sets it
    // from the body, and wasi-http refuses a body shorter than a declared length.
    let body = if matches!(req.method(), Method::Head) {
        Vec::new()
    } else {
        body
    };
    Ok(Response::builder()
        .status(200)
        .header("content-type", asset.content_type)
        .header("cache-control", asset.cache_control)
        .header(http::CORRELATION_HEADER, ctx.correlation.as_str())
        .body(body)
        .build())
}

/// Health: the build is mounted (a console without its app is not ready).
pub fn check_index() -> anyhow::Result<()> {
    std::fs::metadata(format!("{ROOT}index.html"))
        .map(drop)
        .context("the console build (index.html) is not mounted: run `make build`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rest: &[&str]) -> Option<(String, &'static str)> {
        resolve(rest).map(|a| (a.file, a.cache_control))
    }

    #[test]
    fn the_app_and_its_client_routes_are_index_html_revalidated_on_every_load() {
        for rest in [&[][..], &["rider"], &["ops", "rides"], &["index.html"]] {
            assert_eq!(
                file(rest),
                Some(("index.html".into(), NO_CACHE)),
                "{rest:?}"
            );
        }
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
    }

    #[test]
    fn hashed_assets_are_immutable_for_a_year() {
        let a = resolve(&["assets", "index-B1c2D3.js"]).unwrap();
        assert_eq!(a.file, "assets/index-B1c2D3.js");
        assert_eq!(a.cache_control, "public, max-age=31536000, immutable");
        assert_eq!(a.content_type, "text/javascript; charset=utf-8");
        assert_eq!(
            resolve(&["assets", "index-X.css"]).unwrap().content_type,
            "text/css; charset=utf-8"
        );
    }

    #[test]
    fn unhashed_public_files_are_cached_briefly() {
        let a = resolve(&["favicon.svg"]).unwrap();
        assert_eq!(
            (a.file.as_str(), a.content_type, a.cache_control),
            ("favicon.svg", "image/svg+xml", SHORT)
        );
    }

    #[test]
    fn hidden_parent_and_deep_paths_name_nothing() {
        for rest in [
            &["..", "etc", "passwd"][..],
            &["assets", ".."],
            &["assets", ".env"],
            &[".git", "config"],
            &["assets", "a\\b.js"],
            &["assets", "deep", "x.js"],
            &["other", "x.js"],
        ] {
            assert_eq!(resolve(rest), None, "{rest:?}");
        }
    }

    #[test]
    fn unknown_extensions_are_octet_streams() {
        assert_eq!(content_type("blob.bin"), "application/octet-stream");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(content_type("X.JS"), "text/javascript; charset=utf-8");
    }

    #[test]
    fn the_policy_allows_nothing_foreign_or_inline() {
        for part in [
            "default-src 'self'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "object-src 'none'",
        ] {
            assert!(CONTENT_SECURITY_POLICY.contains(part), "{part}");
        }
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
    }
}
