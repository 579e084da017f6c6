//! The wiring: binds the listeners, starts the file loaders and the audit writer, and
//! serves until shutdown. `plugin-operator broker` enters at [`run`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::BoxError;
use super::args::BrokerArgs;
use super::audit::{self, AuditLog, DecisionIds};
use super::http::admin::Admin;
use super::http::inbound::Inbound;
use super::http::outbound::Outbound;
use super::http::server;
use super::http::target::{Target, TargetError};
use super::http::upstream::{Dedicated, Forwarder};
use super::metrics::Metrics;
use super::reload;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("the outbound listener must be on a loopback address, not {0}")]
    OutboundNotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot read a listener's address: {0}")]
    LocalAddr(io::Error),
    #[error("--chat-api-url: {0}")]
    ChatApi(#[from] TargetError),
    #[error("cannot wait for SIGTERM: {0}")]
    Signal(io::Error),
}

/// The three bound sockets. Tests bind them to `127.0.0.1:0` and run in parallel.
#[derive(Debug)]
pub struct Listeners {
    pub outbound: TcpListener,
    pub inbound: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds the addresses of `args`; the outbound one must be loopback.
    pub async fn bind(args: &BrokerArgs) -> Result<Self, BrokerError> {
        if !args.outbound_bind.ip().is_loopback() {
            return Err(BrokerError::OutboundNotLoopback(args.outbound_bind));
        }
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| BrokerError::Bind { addr, source })
        };
        Ok(Self {
            outbound: bind(args.outbound_bind).await?,
            inbound: bind(args.inbound_bind).await?,
            admin: bind(args.admin_bind).await?,
        })
    }
}

/// A broker serving on its listeners until [`RunningBroker::shutdown`].
#[derive(Debug)]
pub struct RunningBroker {
    pub outbound_addr: SocketAddr,
    pub inbound_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    stop: watch::Sender<bool>,
    servers: Vec<JoinHandle<()>>,
    loaders: Vec<JoinHandle<()>>,
    audit_log: AuditLog,
    grace: std::time::Duration,
}

impl RunningBroker {
    /// Stops accepting, lets requests in flight finish (up to the shutdown grace), and
    /// stops watching files. Returns whether every connection finished in time.
    pub async fn shutdown(self) -> bool {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(self.grace, async {
            for server in self.servers {
                let _ = server.await;
            }
        })
        .await
        .is_ok();
        for loader in self.loaders {
            loader.abort();
        }
        self.audit_log.flush().await;
        drained
    }
}

/// Starts the broker on already bound listeners. The policy and token files are read
/// once before this returns, then polled in the background.
pub async fn start(args: &BrokerArgs, listeners: Listeners) -> Result<RunningBroker, BrokerError> {
    let audit_log = AuditLog::new(args.log_format, args.audit_destination.clone());
    let metrics = Arc::new(Metrics::new(audit_log.dropped()));
    let chat_api = Target::parse(&args.chat_api_url)?;
    let chat_api_forwarder = Forwarder::new(&chat_api, args.chat_api_ca_file.as_deref())?;
    let plugin = Target::plugin(args.plugin_port);
    let plugin_forwarder = Forwarder::new(&plugin, None)?;

    let (mut policy_loader, policy) =
        reload::policy::loader(&args.policy_file, args.plugin_id.clone(), metrics.clone());
    policy_loader.poll_once().await;
    let (mut credential_loader, credential) =
        reload::credential::loader(&args.token_file, metrics.clone());
    credential_loader.poll_once().await;
    let loaders = vec![
        tokio::spawn(policy_loader.run(args.policy_poll_interval)),
        tokio::spawn(credential_loader.run(args.token_poll_interval)),
        audit_log.spawn_writer(),
    ];

    let outbound = Arc::new(Outbound {
        policy: policy.clone(),
        credential: credential.clone(),
        trusted: match &args.chat_api_ca_file {
            Some(path) => format!("the CAs in {}", path.display()),
            None => "the system's trust store".into(),
        },
        target: chat_api,
        forwarder: chat_api_forwarder,
        timeout: args.upstream_timeout,
        metrics: metrics.clone(),
        ids: DecisionIds::default(),
        audit_log: audit_log.clone(),
        no_scope: Arc::new(String::new()),
    });
    let inbound = Arc::new(Inbound {
        policy: policy.clone(),
        target: plugin,
        forwarder: plugin_forwarder,
        metrics: metrics.clone(),
        ids: DecisionIds::default(),
    });
    let max_outbound = usize::try_from(args.max_outbound_connections).unwrap_or(usize::MAX);
    let outbound_cap = metrics.outbound_connection_cap(max_outbound);
    let admin = Arc::new(Admin {
        policy,
        credential,
        metrics,
    });

    let local = |listener: &TcpListener| listener.local_addr().map_err(BrokerError::LocalAddr);
    let (outbound_addr, inbound_addr, admin_addr) = (
        local(&listeners.outbound)?,
        local(&listeners.inbound)?,
        local(&listeners.admin)?,
    );
    let (stop, stopping) = watch::channel(false);
    let listen = server::Listen {
        header_read_timeout: args.header_read_timeout,
        shutdown: stopping,
    };
    let servers = vec![
        listen.spawn(
            "outbound",
            listeners.outbound,
            Some(outbound_cap),
            move |slot| {
                let (outbound, dedicated) = (outbound.clone(), Arc::new(Dedicated::new(slot)));
                move |request| outbound.clone().handle(dedicated.clone(), request)
            },
        ),
        listen.spawn("inbound", listeners.inbound, None, move |_| {
            let inbound = inbound.clone();
            move |request| inbound.clone().handle(request)
        }),
        listen.spawn("admin", listeners.admin, None, move |_| {
            let admin = admin.clone();
            move |request| admin.clone().handle(request)
        }),
    ];
    tracing::info!(
        %outbound_addr,
        %inbound_addr,
        %admin_addr,
        plugin_port = args.plugin_port,
        "broker listening"
    );
    Ok(RunningBroker {
        outbound_addr,
        inbound_addr,
        admin_addr,
        stop,
        servers,
        loaders,
        audit_log,
        grace: args.shutdown_grace,
    })
}

/// `plugin-operator broker`: serves until SIGTERM or Ctrl-C, then drains.
pub async fn run(args: BrokerArgs) -> Result<(), BoxError> {
    serve_until_terminated(args).await.map_err(BoxError::from)
}

/// Serves, then writes the log lines still buffered (at most [`audit::FLUSH_WITHIN`]).
async fn serve_until_terminated(args: BrokerArgs) -> Result<(), BrokerError> {
    crate::telemetry::init_writing_to(args.log_format, audit::stdout_log_lines());
    let result = serve(args).await;
    audit::flush_stdout().await;
    result
}

async fn serve(args: BrokerArgs) -> Result<(), BrokerError> {
    let listeners = Listeners::bind(&args).await?;
    let broker = start(&args, listeners).await?;
    wait_for_termination().await?;
    tracing::info!("shutting down: finishing requests in flight");
    if broker.shutdown().await {
        tracing::info!("stopped");
    } else {
        tracing::warn!("stopped with requests still in flight after the shutdown grace");
    }
    Ok(())
}

async fn wait_for_termination() -> Result<(), BrokerError> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(BrokerError::Signal)?;
    tokio::select! {
        _ = terminate.recv() => {}
        result = tokio::signal::ctrl_c() => result.map_err(BrokerError::Signal)?,
    }
    Ok(())
}
