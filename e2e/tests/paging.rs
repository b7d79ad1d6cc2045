//! Every list is paged: a stable order, each row exactly once across the pages, tokens that
//! only open in their own listing, and a page that costs the same however large the table.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e::{Mesh, MeshOptions};
use serde_json::{Value, json};

const PRODUCTS: usize = 10_000;

/// GETs `path` with the harness's token; the status, the JSON rows and the next token.
async fn page(mesh: &Mesh, path: &str) -> (u16, Value, Option<String>) {
    let response = mesh
        .http
        .get(mesh.url(path))
        .send()
        .await
        .expect("gateway answers");
    let next = response
        .headers()
        .get("next-page-token")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let (status, body) = e2e::read(response).await;
    (status, body, next)
}

/// Walks `path` page by page with `size`; every row's id, in order, and each page's time.
async fn walk(mesh: &Mesh, path: &str, size: usize) -> (Vec<i64>, Vec<Duration>) {
    let mut ids = Vec::new();
    let mut times = Vec::new();
    let mut token: Option<String> = None;
    let separator = if path.contains('?') { '&' } else { '?' };
    loop {
        let mut url = format!("{path}{separator}pageSize={size}");
        if let Some(token) = &token {
            url.push_str(&format!("&pageToken={token}"));
        }
        let started = Instant::now();
        let (status, rows, next) = page(mesh, &url).await;
        times.push(started.elapsed());
        assert_eq!(status, 200, "{url}: {rows}");
        let rows = rows.as_array().expect("a JSON array").clone();
        assert!(rows.len() <= size, "{url}: {} rows", rows.len());
        ids.extend(rows.iter().map(|row| row["id"].as_i64().expect("an id")));
        match next {
            Some(next) => {
                assert_eq!(rows.len(), size, "only the last page is short");
                token = Some(next);
            }
            None => return (ids, times),
        }
    }
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_products_page_through_each_exactly_once_at_a_steady_cost() {
    let mesh = Mesh::start("paging_products", MeshOptions::default()).await;
    let started = Instant::now();
    let mut registering = tokio::task::JoinSet::new();
    for n in 0..PRODUCTS {
        let request = mesh
            .http
            .post(mesh.url("/product"))
            .json(&json!({"productName": format!("item-{n}")}));
        registering.spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
        if registering.len() >= 32 {
            let status = registering
                .join_next()
                .await
                .expect("a task")
                .expect("joined");
            assert_eq!(status.ok(), Some(201));
        }
    }
    while let Some(status) = registering.join_next().await {
        assert_eq!(status.expect("joined").ok(), Some(201));
    }
    println!("registered {PRODUCTS} products in {:?}", started.elapsed());

    let (ids, times) = walk(&mesh, "/products", 50).await;
    assert_eq!(ids.len(), PRODUCTS, "every product once");
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "a stable id order"
    );
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        PRODUCTS,
        "no product twice"
    );
    let (first, last) = (median(&times[..20]), median(&times[times.len() - 20..]));
    println!(
        "{} pages of 50: first 20 pages median {first:?}, last 20 pages median {last:?}",
        times.len()
    );
    // Keyset paging reads by the primary key: the 200th page costs what the 1st does. A
    // table scan (offset paging, or loading everything) would make the last pages many times
    // dearer; the bound is loose for a shared, noisy machine.
    assert!(
        last < first * 4 + Duration::from_millis(25),
        "pages got dearer: {first:?} → {last:?}"
    );

    let (big, _) = walk(&mesh, "/products", 500).await;
    assert_eq!(
        big, ids,
        "the same rows in the same order with another page size"
    );

    // Sizes and tokens are checked.
    for bad in [
        "pageSize=501",
        "pageSize=-1",
        "pageSize=abc",
        "pageToken=forged",
        "pageToken=",
    ] {
        let (status, error, _) = page(&mesh, &format!("/products?{bad}")).await;
        if bad == "pageToken=" {
            assert_eq!(status, 200, "an empty token is the first page");
        } else {
            assert_eq!(status, 400, "{bad}: {error}");
        }
    }
    let (_, _, next) = page(&mesh, "/products?pageSize=2").await;
    let token = next.expect("a next page");
    let mut altered = token.clone().into_bytes();
    let at = altered.len() / 2;
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("ascii");
    let (status, error, _) = page(&mesh, &format!("/products?pageToken={altered}")).await;
    assert_eq!(status, 400, "an altered token: {error}");
    let (status, error, _) = page(&mesh, &format!("/reservations?pageToken={token}")).await;
    assert_eq!(status, 400, "another listing's token: {error}");
}

#[tokio::test]
async fn every_list_route_pages() {
    let mesh = Mesh::start("paging_lists", MeshOptions::default()).await;
    for n in 0..3 {
        mesh.register_product(&format!("item-{n}")).await;
    }
    let mut reservations = Vec::new();
    for product in 1..=3 {
        reservations.push(mesh.reserve(product, "kim").await);
    }
    mesh.eventually("/payments", Duration::from_secs(20), |list| {
        list.as_array().is_some_and(|l| l.len() == 3)
    })
    .await;
    mesh.eventually("/mypage?customerId=kim", Duration::from_secs(20), |list| {
        list.as_array().is_some_and(|l| l.len() == 3)
    })
    .await;
    mesh.eventually("/notice?customerId=kim", Duration::from_secs(20), |list| {
        list.as_array().is_some_and(|l| l.len() >= 6)
    })
    .await;
    for (path, expected) in [
        ("/reservations", 3),
        ("/payments", 3),
        ("/mypage?customerId=kim", 3),
        ("/notice?customerId=kim", 6),
    ] {
        let (ids, _) = walk(&mesh, path, 2).await;
        assert_eq!(ids.len(), expected, "{path}: {ids:?}");
        assert_eq!(
            ids.iter().collect::<BTreeSet<_>>().len(),
            expected,
            "{path}: each once"
        );
    }
}
