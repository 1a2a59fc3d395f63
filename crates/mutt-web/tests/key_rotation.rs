//! Keys replaced while the API serves (a rotated WEBUI_API_KEY): the new key is accepted and
//! named at once, a key no longer in the list is refused, and an empty list changes nothing.

use mutt_core::Secret;
use mutt_testapp::{BackendKind, Site, serve_web};
use mutt_web::ApiKey;

#[tokio::test]
async fn replaced_keys_apply_to_the_next_request() {
    let site = Site::fresh(BackendKind::Embedded).await;
    let backend = site.open().await;
    let config = mutt_web::WebConfig { api_keys: vec![Secret::new("ops:old-key").into()], ..Default::default() };
    let web = serve_web(&backend, config, Default::default()).await;
    let (keys, url) = (&web.keys, format!("{}/api/v2/rules", web.base_url));
    let http = reqwest::Client::new();
    let status = |key: &'static str| {
        let (http, url) = (http.clone(), url.clone());
        async move { http.get(&url).header("X-API-KEY", key).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("old-key").await, 200);
    assert_eq!(status("new-key").await, 401);

    assert!(keys.set(vec![Secret::new("ops:new-key").into(), Secret::new("ci:ci-key").into()]));
    assert_eq!(status("new-key").await, 200);
    assert_eq!(status("ci-key").await, 200);
    assert_eq!(status("old-key").await, 401, "a key no longer configured is refused at once");
    assert_eq!(keys.get().iter().map(ApiKey::name).collect::<Vec<_>>(), ["ops", "ci"]);

    assert!(!keys.set(vec![Secret::new("").into()]), "no key: the management API keeps the old ones");
    assert_eq!(status("new-key").await, 200);
}
