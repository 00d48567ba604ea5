//! The AWS Lambda entry: one invocation = one incremental sync, or one verify for an event
//! `{"verify": {"days": 3}}` (`scansync::lambda`).
//! Build it with `cargo lambda build --release --bin bootstrap`; deploy it with
//! `deploy/aws/lambda/template.yaml`.

use scansync::lambda::Handler;
use std::process::ExitCode;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bootstrap: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let handler = match runtime.block_on(Handler::from_env()) {
        Ok(h) => Arc::new(h),
        Err(e) => {
            // A cold start that fails here is an init error in Lambda's log, with this text.
            eprintln!("bootstrap: {e}");
            return ExitCode::from(2);
        }
    };
    scansync::logging::init(handler.log_format, "scansync=info,warn");
    let result = runtime.block_on(async move {
        handler.stop.on_signals(handler.stop_before);
        let service =
            lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
                let handler = handler.clone();
                async move {
                    let function = event.context.env_config.function_name.clone();
                    handler.invoke(&event.payload, event.context.deadline, &function).await
                }
            });
        lambda_runtime::run(service).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bootstrap: the Lambda runtime API failed: {e}");
            ExitCode::from(1)
        }
    }
}
