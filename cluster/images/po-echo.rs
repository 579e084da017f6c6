//! po-echo: a tiny std-only test program for the local cluster's node tests.
//! Built statically with rustc by cluster/test-images.sh into localhost/po-echo:test.
//!
//!   po-echo serve [PORT]            HTTP server: answers every request with "hello from <host>"
//!   po-echo get HOST:PORT [TRIES]   one HTTP GET /, prints the answer; exit 0 on 200, 1 otherwise
//!   po-echo alloc MIB               allocates and touches MIB MiB of memory, then sleeps
//!   po-echo sleep                   sleeps forever

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;
use std::{env, process, thread};

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn serve(port: u16) -> ! {
    let listener = TcpListener::bind(("0.0.0.0", port)).unwrap_or_else(|e| {
        eprintln!("bind 0.0.0.0:{port}: {e}");
        process::exit(1)
    });
    println!("po-echo listening on 0.0.0.0:{port}");
    let host = hostname();
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let host = host.clone();
        thread::spawn(move || {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let first = String::from_utf8_lossy(&buf[..n]);
            let line = first.lines().next().unwrap_or("").to_string();
            let peer = conn.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            println!("request from {peer}: {line}");
            let body = format!("hello from {host}\n");
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes());
        });
    }
    process::exit(0)
}

fn get_once(target: &str) -> Result<String, String> {
    let addrs: Vec<_> = target
        .to_socket_addrs()
        .map_err(|e| format!("resolve {target}: {e}"))?
        .collect();
    let addr = addrs.first().ok_or_else(|| format!("resolve {target}: no address"))?;
    let mut s = TcpStream::connect_timeout(addr, Duration::from_secs(3))
        .map_err(|e| format!("connect {target} ({addr}): {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let host = target.rsplit_once(':').map(|(h, _)| h).unwrap_or(target);
    s.write_all(format!("GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| format!("read: {e}"))?;
    if out.starts_with("HTTP/1.1 200") {
        Ok(format!("{addr} answered: {}", out.rsplit("\r\n\r\n").next().unwrap_or("").trim()))
    } else {
        Err(format!("unexpected answer from {addr}: {out:?}"))
    }
}

fn get(target: &str, tries: u32) -> ! {
    let mut last = String::new();
    for i in 0..tries.max(1) {
        match get_once(target) {
            Ok(msg) => {
                println!("OK {msg}");
                process::exit(0)
            }
            Err(e) => {
                println!("try {}: {e}", i + 1);
                last = e;
            }
        }
        thread::sleep(Duration::from_secs(1));
    }
    println!("FAILED {last}");
    process::exit(1)
}

fn alloc(mib: usize) -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for i in 0..mib {
        let mut v = vec![0u8; 1 << 20];
        for j in (0..v.len()).step_by(4096) {
            v[j] = (i + j) as u8;
        }
        chunks.push(v);
        if i % 16 == 0 {
            println!("allocated {i} MiB");
        }
    }
    println!("allocated {mib} MiB; sleeping");
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

fn main() {
    let args: Vec<String> = env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => serve(args.get(2).and_then(|p| p.parse().ok()).unwrap_or(8080)),
        Some("get") if args.len() > 2 => get(&args[2], args.get(3).and_then(|t| t.parse().ok()).unwrap_or(1)),
        Some("alloc") if args.len() > 2 => alloc(args[2].parse().unwrap_or(64)),
        Some("sleep") => loop {
            thread::sleep(Duration::from_secs(3600));
        },
        _ => {
            eprintln!("usage: po-echo serve [PORT] | get HOST:PORT [TRIES] | alloc MIB | sleep");
            process::exit(2)
        }
    }
}
