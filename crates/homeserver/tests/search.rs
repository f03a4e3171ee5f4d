//! Directory search and token auth on both engines, over a directory built
//! by the job.

mod support;

use support::*;
use updraft_homeserver::auth::{token_owner, TokenOwner};
use updraft_homeserver::search::search_users;
use updraft_testkit::both_engines;

async fn world(t: &updraft_testkit::TestDb) -> World {
    let mut w = World::new(t).await;
    let o = UserOpts::default;
    w.user("@me:hs.test", o()).await;
    w.user("@alice:hs.test", o()).await;
    w.user("@alicia:hs.test", o()).await;
    w.user("@secret:hs.test", o()).await;
    w.user(
        "@locked:hs.test",
        UserOpts {
            locked: true,
            ..o()
        },
    )
    .await;
    w.profile("@alice:hs.test", Some("Alice Liddell"), Some("mxc://a"))
        .await;
    w.profile("@alicia:hs.test", Some("Re\u{301}alicia"), None)
        .await;
    w.profile("@locked:hs.test", Some("Alice Locked"), None)
        .await;
    w.profile("@secret:hs.test", Some("Alice Hidden"), None)
        .await;
    w.room_with("!pub:hs.test", "@alice:hs.test", "public")
        .await;
    for u in ["@alice:hs.test", "@alicia:hs.test", "@locked:hs.test"] {
        w.join("!pub:hs.test", u, None).await;
    }
    w.join("!pub:hs.test", "@alice-remote:far.org", Some("ALICE far"))
        .await;
    // @secret shares a private room with @me only.
    w.room_with("!priv:hs.test", "@me:hs.test", "invite").await;
    w.join("!priv:hs.test", "@me:hs.test", None).await;
    w.join("!priv:hs.test", "@secret:hs.test", None).await;
    start_job(&w.db, "regenerate_directory").await;
    run_all(&w.db, &config(), 1000).await;
    w
}

fn ids(r: &updraft_homeserver::search::SearchResponse) -> Vec<&str> {
    r.results.iter().map(|h| h.user_id.as_str()).collect()
}

both_engines! {
    async fn search_visibility_ranking_and_limits(t) {
        let w = world(&t).await;
        let c = config();
        // Exact word over prefix, display name and avatar first; locked users hidden.
        let r = search_users(&w.db, &c, "@nobody:hs.test", "alice", 10).await.unwrap();
        assert_eq!(ids(&r), vec!["@alice:hs.test", "@alice-remote:far.org"]);
        assert!(!r.limited);
        assert_eq!(r.results[0].display_name.as_deref(), Some("Alice Liddell"));
        assert_eq!(r.results[0].avatar_url.as_deref(), Some("mxc://a"));
        // The private-room partner is visible to @me only.
        let r = search_users(&w.db, &c, "@me:hs.test", "hidden", 10).await.unwrap();
        assert_eq!(ids(&r), vec!["@secret:hs.test"]);
        let r = search_users(&w.db, &c, "@alice:hs.test", "hidden", 10).await.unwrap();
        assert!(r.results.is_empty());
        // Prefix matching, normalised terms (decomposed accent, case).
        let r = search_users(&w.db, &c, "@me:hs.test", "ALIC", 1).await.unwrap();
        assert_eq!(r.results.len(), 1);
        assert!(r.limited);
        let r = search_users(&w.db, &c, "@me:hs.test", "RE\u{301}ALI", 10).await.unwrap();
        assert_eq!(ids(&r), vec!["@alicia:hs.test"]);
        // User-id search splits on @ and : and keeps '-' inside a word.
        let r = search_users(&w.db, &c, "@me:hs.test", "@alice-remote:far", 10).await.unwrap();
        assert_eq!(ids(&r), vec!["@alice-remote:far.org"]);
        // Punctuation only: nothing.
        let r = search_users(&w.db, &c, "@me:hs.test", " !! ", 10).await.unwrap();
        assert!(r.results.is_empty() && !r.limited);
        // show_locked_users and search_all_users.
        let mut c2 = config();
        c2.user_directory.show_locked_users = true;
        let r = search_users(&w.db, &c2, "@nobody:hs.test", "locked", 10).await.unwrap();
        assert_eq!(ids(&r), vec!["@locked:hs.test"]);
        c2.user_directory.search_all_users = true;
        let r = search_users(&w.db, &c2, "@alice:hs.test", "hidden", 10).await.unwrap();
        assert_eq!(ids(&r), vec!["@secret:hs.test"]);
    }

    async fn tokens(t) {
        let w = World::new(&t).await;
        w.user("@admin:hs.test", UserOpts { admin: true, ..UserOpts::default() }).await;
        w.user("@user:hs.test", UserOpts::default()).await;
        w.user("@guest:hs.test", UserOpts { guest: true, ..UserOpts::default() }).await;
        w.user("@locked:hs.test", UserOpts { locked: true, ..UserOpts::default() }).await;
        w.exec("INSERT INTO access_tokens (id, user_id, token, valid_until_ms) VALUES
            (1, '@admin:hs.test', 'ta', NULL), (2, '@user:hs.test', 'tu', 2000), (3, '@guest:hs.test', 'tg', NULL),
            (4, '@locked:hs.test', 'tl', NULL), (5, '@user:hs.test', 'old', 999), (6, '@ghost:hs.test', 'tx', NULL)", &[]).await;
        let now = 1000;
        assert_eq!(token_owner(&w.db, "ta", now).await.unwrap(), TokenOwner::User { user_id: "@admin:hs.test".into(), admin: true });
        assert_eq!(token_owner(&w.db, "tu", now).await.unwrap(), TokenOwner::User { user_id: "@user:hs.test".into(), admin: false });
        assert_eq!(token_owner(&w.db, "tg", now).await.unwrap(), TokenOwner::Guest { user_id: "@guest:hs.test".into() });
        assert_eq!(token_owner(&w.db, "tl", now).await.unwrap(), TokenOwner::Locked { user_id: "@locked:hs.test".into() });
        assert_eq!(token_owner(&w.db, "old", now).await.unwrap(), TokenOwner::Expired);
        assert_eq!(token_owner(&w.db, "tx", now).await.unwrap(), TokenOwner::Unknown);
        assert_eq!(token_owner(&w.db, "nope", now).await.unwrap(), TokenOwner::Unknown);
    }
}
