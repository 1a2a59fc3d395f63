//! The console's development-hosts and teams pages over plain HTTP, on both backends: add,
//! rename/change, remove with the config-audit rows the API writes, a duplicate refused next
//! to its field, and the CSV imports (pasted and uploaded; a bad line lists every problem by
//! line and imports nothing; one reload notice per import).

mod ui_client;

use mutt_testapp::reqwest::StatusCode;
use mutt_testapp::{BackendKind, both_backends, spawn_app};
use serde_json::json;
use std::time::Duration;
use ui_client::{Console, Notices, assert_forms_carry_csrf, audit_rows, field_error, location};

async fn hosts_add_rename_remove(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let c = Console::login(&app).await;
    let r = c.post("/hosts/add", &[("hostname", " dev-router-1 "), ("reason", "lab")]).await;
    assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, "/hosts".into()));
    assert_eq!(app.backend.store.development_hosts().await.unwrap(), ["dev-router-1"]);
    let rows = audit_rows(&app, "development_hosts").await;
    assert_eq!(
        (rows[0]["operation"].clone(), rows[0]["changed_by"].clone()),
        (json!("CREATE"), json!("webui_api:default"))
    );
    assert_eq!(rows[0]["reason"], "lab");
    let (status, html) = c.get("/hosts").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("dev-router-1 is now a development host.") && html.contains("<td>dev-router-1</td>"),
        "{html}"
    );
    // Add, remove, import and logout (the filter is a GET): every POST form has the token.
    assert_eq!(assert_forms_carry_csrf(&html, &c.csrf), 4);

    // A duplicate: refused next to the field, with what was typed kept.
    let r = c.post("/hosts/add", &[("hostname", "dev-router-1")]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert_eq!(field_error(&html, "add").as_deref(), Some("Hostname already exists"), "{html}");
    let html = c.post("/hosts/add", &[("hostname", "  ")]).await.text().await.unwrap();
    assert_eq!(field_error(&html, "add").as_deref(), Some("hostname is required"));

    // Rename: the edit row, then the new name added and the old removed (two audit rows).
    let (_, html) = c.get("/hosts?edit=dev-router-1").await;
    assert!(html.contains("New name for dev-router-1"), "{html}");
    let r = c.post("/hosts/edit", &[("hostname", "dev-router-1"), ("new_hostname", "dev-router-2")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.backend.store.development_hosts().await.unwrap(), ["dev-router-2"]);
    let ops: Vec<_> = audit_rows(&app, "development_hosts").await.iter().map(|r| r["operation"].clone()).collect();
    assert_eq!(ops, [json!("DELETE"), json!("CREATE"), json!("CREATE")]);

    let r = c.post("/hosts/remove", &[("hostname", "dev-router-2")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(app.backend.store.development_hosts().await.unwrap().is_empty());
    let (_, html) = c.get("/hosts").await;
    assert!(html.contains("dev-router-2 is no longer a development host."), "{html}");
    // Removing what is not there: said so, nothing else happens.
    c.post("/hosts/remove", &[("hostname", "ghost")]).await;
    let (_, html) = c.get("/hosts?q=x").await;
    assert!(html.contains("ghost was not removed: Hostname not found"), "{html}");
}

async fn hosts_import_lists_every_bad_line_and_imports_nothing(kind: BackendKind) {
    let app = spawn_app(kind).await;
    app.backend.store.insert_development_host("already-dev").await.unwrap();
    let c = Console::login(&app).await;
    let text = "hostname\nlab-1\n\nlab-2,extra\nalready-dev\n# a comment\nlab-1\n\"\"\nlab-3\n";
    let r = c.post("/hosts/import", &[("csv", text)]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    for expected in [
        "Nothing was imported: 4 line(s) need fixing.",
        "Line 4: expected 1 field(s) (hostname), found 2",
        "Line 5: already-dev is already a development host",
        "Line 7: lab-1 is also on line 2",
        "Line 8: hostname is empty",
    ] {
        assert!(html.contains(expected), "{expected}: {html}");
    }
    assert!(html.contains("lab-3\n</textarea>"), "the text stays for fixing: {html}");
    assert_eq!(app.backend.store.development_hosts().await.unwrap(), ["already-dev"], "nothing imported");

    // Fixed, and uploaded as a file: all imported, one audit row each, one notice.
    let mut notices = Notices::listen(&app).await;
    let r = c.upload("/hosts/import", "lab-1\r\nlab-2\r\nlab-3\r\n", "ignored when a file is chosen").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    let hosts = app.backend.store.development_hosts().await.unwrap();
    assert_eq!(hosts, ["already-dev", "lab-1", "lab-2", "lab-3"]);
    let rows = audit_rows(&app, "development_hosts").await;
    assert_eq!(rows.iter().filter(|r| r["reason"] == "CSV import").count(), 3);
    assert!(notices.heard(Duration::from_millis(2500)).await, "the alerters are told");
    if kind == BackendKind::RedisPostgres {
        assert_eq!(notices.count(Duration::from_millis(500)).await, 0, "one notice for the whole import");
    }
    let (_, html) = c.get("/hosts").await;
    assert!(html.contains("Imported 3 development host(s)."), "{html}");
    // No file chosen: the text area is used.
    let r = c.upload("/hosts/import", "", "lab-4").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(app.backend.store.development_hosts().await.unwrap().contains(&"lab-4".to_string()));
    // An upload without the CSRF token is refused.
    let r = c.post_without_csrf("/hosts/import", &[("csv", "lab-5")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

async fn teams_add_change_remove(kind: BackendKind) {
    let app = spawn_app(kind).await;
    let c = Console::login(&app).await;
    let r = c.post("/teams/add", &[("hostname", "core-sw-1"), ("team_assignment", "CORE")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.backend.store.device_teams().await.unwrap(), [("core-sw-1".to_string(), "CORE".to_string())]);
    let (_, html) = c.get("/teams").await;
    assert!(html.contains("core-sw-1 now goes to CORE.") && html.contains("<td>CORE</td>"), "{html}");

    let r = c.post("/teams/add", &[("hostname", "core-sw-1"), ("team_assignment", "NETO")]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert_eq!(field_error(&html, "add-hostname").as_deref(), Some("Hostname already has a team assignment"));
    let html = c.post("/teams/add", &[("hostname", "x"), ("team_assignment", "")]).await.text().await.unwrap();
    assert!(field_error(&html, "add-team").is_some_and(|e| e.contains("required")), "{html}");
    let long = "T".repeat(101);
    let html = c.post("/teams/add", &[("hostname", "x"), ("team_assignment", &long)]).await.text().await.unwrap();
    assert_eq!(field_error(&html, "add-team").as_deref(), Some("team_assignment is longer than 100 characters"));

    let (_, html) = c.get("/teams?edit=core-sw-1").await;
    assert!(html.contains("Team for core-sw-1") && html.contains("value=\"CORE\""), "{html}");
    // Add, the row's edit, import and logout.
    assert_eq!(assert_forms_carry_csrf(&html, &c.csrf), 4);
    let r = c.post("/teams/edit", &[("hostname", "core-sw-1"), ("team_assignment", "NETO"), ("reason", "reorg")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.backend.store.device_teams().await.unwrap()[0].1, "NETO");
    let rows = audit_rows(&app, "device_teams").await;
    assert_eq!(rows[0]["old_values"]["team_assignment"], "CORE");
    assert_eq!(rows[0]["new_values"]["team_assignment"], "NETO");
    assert_eq!(rows[0]["changed_by"], "webui_api:default");
    // Changing a host that has no mapping: the error on the edit row.
    let r = c.post("/teams/edit", &[("hostname", "ghost"), ("team_assignment", "X")]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let r = c.post("/teams/remove", &[("hostname", "core-sw-1")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(app.backend.store.device_teams().await.unwrap().is_empty());
    assert_eq!(audit_rows(&app, "device_teams").await[0]["operation"], "DELETE");
    // Filters match the hostname or the team.
    app.backend.store.insert_device_team("edge-1", "EDGE").await.unwrap();
    app.backend.store.insert_device_team("core-2", "CORE").await.unwrap();
    let (_, html) = c.get("/teams?q=edge").await;
    assert!(html.contains("edge-1") && !html.contains("core-2"), "{html}");
}

async fn teams_import_lists_every_bad_line_and_imports_nothing(kind: BackendKind) {
    let app = spawn_app(kind).await;
    app.backend.store.insert_device_team("mapped", "CORE").await.unwrap();
    let c = Console::login(&app).await;
    let text = "hostname,team_assignment\nr1,NETO\nr2\nmapped,EDGE\nr1,CORE\nr3,\n\"r4, the \"\"big\"\" one\",EDGE\n\"open,X\n";
    let r = c.post("/teams/import", &[("csv", text)]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    // An unclosed quote stops the reading: that line is the one reported.
    assert!(html.contains("Line 8: a quoted field is not closed"), "{html}");
    let text = "hostname,team_assignment\nr1,NETO\nr2\nmapped,EDGE\nr1,CORE\nr3,\n\"r4, the \"\"big\"\" one\",EDGE\n";
    let html = c.post("/teams/import", &[("csv", text)]).await.text().await.unwrap();
    for expected in [
        "Nothing was imported: 4 line(s) need fixing.",
        "Line 3: expected 2 field(s) (hostname,team_assignment), found 1",
        "Line 4: mapped already goes to CORE (change it on its row)",
        "Line 5: r1 is also on line 2",
        "Line 6: team_assignment is empty",
    ] {
        assert!(html.contains(expected), "{expected}: {html}");
    }
    assert_eq!(app.backend.store.device_teams().await.unwrap().len(), 1, "nothing imported");

    let text = "r1,NETO\n\"r4, the \"\"big\"\" one\",EDGE\n";
    let r = c.upload("/teams/import", text, "").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().await.unwrap());
    let teams = app.backend.store.device_teams().await.unwrap();
    assert!(teams.contains(&("r4, the \"big\" one".to_string(), "EDGE".to_string())), "{teams:?}");
    assert_eq!(teams.len(), 3);
    let (_, html) = c.get("/teams").await;
    assert!(html.contains("Imported 2 team mapping(s)."), "{html}");
}

both_backends!(
    hosts_add_rename_remove,
    hosts_import_lists_every_bad_line_and_imports_nothing,
    teams_add_change_remove,
    teams_import_lists_every_bad_line_and_imports_nothing,
);
