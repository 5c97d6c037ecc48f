//! The bounded queue between the HTTP threads and the one model thread, and the batching rule.
//!
//! An HTTP thread puts a [`Job`] on the queue without waiting: when `--queue` jobs are already
//! waiting it is answered 429 at once. The model thread takes the oldest job, then every job
//! already waiting up to `--max-batch`, splits them into groups of equal [`GroupOptions`] (first
//! come, first run) and runs each group as one batch, then answers each job with its own
//! completions. Each prompt's rows are seeded from its own seed, so a request gets the same
//! samples whatever it was batched with (up to the last bits of floating point that padding and
//! batch size can change in the logits). A panic in the engine answers the jobs of its group 500
//! and the thread goes on with the next group.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use w2s_llama::Generation;

use crate::api_error::ApiError;
use crate::engine::{Engine, GroupOptions};
use crate::error::{Result, ServeError};

/// What the model thread answers a job with.
pub type Reply = std::result::Result<Vec<Generation>, ApiError>;

/// One request for the model thread.
#[derive(Debug)]
pub struct Job {
    /// Token ids of each prompt.
    pub prompts: Vec<Vec<u32>>,
    /// The seed of each prompt's rows.
    pub seeds: Vec<u64>,
    /// How to generate.
    pub options: GroupOptions,
    /// Where the answer goes.
    reply: SyncSender<Reply>,
}

/// The sending end of the queue, shared by the HTTP threads.
#[derive(Debug, Clone)]
pub struct Queue {
    sender: SyncSender<Job>,
    capacity: usize,
}

impl Queue {
    /// Puts a job on the queue; returns where its answer will come.
    ///
    /// # Errors
    /// 429 when the queue is full, 503 when the model thread is gone.
    pub fn submit(
        &self,
        prompts: Vec<Vec<u32>>,
        seeds: Vec<u64>,
        options: GroupOptions,
    ) -> std::result::Result<Receiver<Reply>, ApiError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job = Job {
            prompts,
            seeds,
            options,
            reply,
        };
        match self.sender.try_send(job) {
            Ok(()) => Ok(answer),
            Err(TrySendError::Full(_)) => Err(ApiError::queue_full(self.capacity)),
            Err(TrySendError::Disconnected(_)) => {
                Err(ApiError::unavailable("the model thread has stopped"))
            }
        }
    }
}

/// Starts the model thread over `engine` with a queue of `capacity` jobs; `alive` turns false
/// when the thread ends, however it ends. The thread ends once every [`Queue`] is dropped and
/// the jobs already queued are answered.
///
/// # Errors
/// [`ServeError::Thread`] when the thread cannot be spawned.
pub fn spawn_model_thread<E: Engine + Send + 'static>(
    engine: E,
    capacity: usize,
    max_batch: usize,
    alive: Arc<AtomicBool>,
) -> Result<(Queue, JoinHandle<()>)> {
    let (sender, receiver) = mpsc::sync_channel(capacity);
    alive.store(true, Ordering::SeqCst);
    let thread = std::thread::Builder::new()
        .name("w2s-serve-model".into())
        .spawn(move || {
            let _alive = AliveGuard(alive);
            while let Ok(first) = receiver.recv() {
                let mut batch = vec![first];
                while batch.len() < max_batch {
                    match receiver.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                for group in groups(batch) {
                    run_group(&engine, group);
                }
            }
        })
        .map_err(|e| ServeError::Thread(format!("starting the model thread: {e}")))?;
    Ok((Queue { sender, capacity }, thread))
}

/// Turns `alive` false when the model thread ends, by return or by panic.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The jobs split by equal options, each group in the order of its first job.
fn groups(batch: Vec<Job>) -> Vec<Vec<Job>> {
    let mut groups: Vec<Vec<Job>> = Vec::new();
    for job in batch {
        match groups.iter_mut().find(|g| g[0].options == job.options) {
            Some(group) => group.push(job),
            None => groups.push(vec![job]),
        }
    }
    groups
}

/// Runs one group as one batch and answers each of its jobs.
fn run_group<E: Engine>(engine: &E, group: Vec<Job>) {
    let prompts: Vec<Vec<u32>> = group.iter().flat_map(|j| j.prompts.clone()).collect();
    let seeds: Vec<u64> = group.iter().flat_map(|j| j.seeds.clone()).collect();
    let options = &group[0].options;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        engine.generate(&prompts, &seeds, options)
    }));
    let generations = match outcome {
        Ok(Ok(generations)) => generations,
        Ok(Err(message)) => return answer_all(group, &ApiError::internal(message)),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            eprintln!("w2s-serve: the model panicked on a batch of {} requests: {message}; they are answered 500 and serving goes on", group.len());
            let error = ApiError::internal(format!("the model panicked: {message}"));
            return answer_all(group, &error);
        }
    };
    let mut first_prompt = 0;
    for job in group {
        let range = first_prompt..first_prompt + job.prompts.len();
        let mine: Vec<Generation> = generations
            .iter()
            .filter(|g| range.contains(&g.prompt_index))
            .map(|g| Generation {
                prompt_index: g.prompt_index - first_prompt,
                ..g.clone()
            })
            .collect();
        first_prompt = range.end;
        // The HTTP thread may have gone (its client hung up): nothing to answer then.
        let _ = job.reply.send(Ok(mine));
    }
}

fn answer_all(group: Vec<Job>, error: &ApiError) {
    for job in group {
        let _ = job.reply.send(Err(error.clone()));
    }
}
