mod support;
use std::time::{Duration, Instant};
#[test]
fn busy() {
    let id = support::identity(&["localhost"]);
    let srt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let scfg = support::server_config(&id);
    let (atx, arx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        srt.block_on(async move {
            let server = smt::Endpoint::builder().bind("127.0.0.1:0".parse().unwrap()).server_config(scfg).busy_poll(true).build().unwrap();
            atx.send(server.local_addr()).unwrap();
            let s2 = server.clone();
            tokio::spawn(async move { loop { tokio::time::sleep(Duration::from_millis(500)).await; eprintln!("server {:?}", s2.stats()); } });
            server.serve(|r| async move { r.into_payload() }).await.unwrap();
        });
    });
    let addr = arx.recv().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let client = smt::Endpoint::builder().bind("127.0.0.1:0".parse().unwrap()).client_config(support::client_config(&id)).busy_poll(true).build().unwrap();
        let s = client.connect(addr, "localhost").await.unwrap();
        let mut v = Vec::new();
        for _ in 0..2000 { let t = Instant::now(); s.call("x").await.unwrap(); v.push(t.elapsed()); }
        v.sort();
        eprintln!("p50 {:?} p90 {:?} max {:?}", v[1000], v[1800], v[1999]);
    });
}
