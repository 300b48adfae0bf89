use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

type Task = Box<dyn FnMut() + Send>;

/// postd patch: how threads are started; a test can make it fail.
type Spawner = Box<dyn Fn(Box<dyn FnOnce() + Send>) -> io::Result<()> + Send + Sync>;

/// Manages a collection of threads.
///
/// A new thread is created every time all the existing threads are full.
/// Any idle thread will automatically die after a few seconds.
pub struct TaskPool {
    sharing: Arc<Sharing>,
    spawner: Spawner,
}

struct Sharing {
    // list of the tasks to be done by worker threads
    todo: Mutex<VecDeque<Task>>,

    // condvar that will be notified whenever a task is added to `todo`
    condvar: Condvar,

    // number of total worker threads running
    active_tasks: AtomicUsize,

    // number of idle worker threads
    waiting_tasks: AtomicUsize,
}

/// Minimum number of active threads.
static MIN_THREADS: usize = 4;

struct Registration<'a> {
    nb: &'a AtomicUsize,
}

impl<'a> Registration<'a> {
    fn new(nb: &'a AtomicUsize) -> Registration<'a> {
        nb.fetch_add(1, Ordering::Release);
        Registration { nb }
    }
}

impl<'a> Drop for Registration<'a> {
    fn drop(&mut self) {
        self.nb.fetch_sub(1, Ordering::Release);
    }
}

impl TaskPool {
    pub fn new() -> TaskPool {
        TaskPool::with_spawner(Box::new(|f| thread::Builder::new().spawn(f).map(|_| ())))
    }

    /// postd patch: a pool whose threads are started by `spawner`.
    pub(crate) fn with_spawner(spawner: Spawner) -> TaskPool {
        let pool = TaskPool {
            sharing: Arc::new(Sharing {
                todo: Mutex::new(VecDeque::new()),
                condvar: Condvar::new(),
                active_tasks: AtomicUsize::new(0),
                waiting_tasks: AtomicUsize::new(0),
            }),
            spawner,
        };

        for _ in 0..MIN_THREADS {
            if let Err((_, e)) = pool.add_thread(None) {
                log::error!("tiny_http: cannot start a connection thread: {e}");
            }
        }

        pool
    }

    /// Executes a function in a thread.
    /// If no thread is available, spawns a new one.
    ///
    /// postd patch: when no thread can be started (`thread::spawn` panicked here, and the
    /// panic ended the accept loop), the task waits in the queue for the next thread that
    /// finishes its task, and the error is returned for the caller to log and slow down.
    pub fn spawn(&self, code: Task) -> io::Result<()> {
        let mut queue = self.sharing.todo.lock().unwrap_or_else(|e| e.into_inner());

        // postd patch: a thread woken for an earlier task still counts as waiting until it
        // takes that task, so "any thread waiting" let a burst of connections queue behind
        // one thread and sit unread until some other connection ended. Each waiting thread
        // takes one queued task; a new task needs a thread of its own when the queue
        // already has as many tasks as there are waiting threads.
        if queue.len() >= self.sharing.waiting_tasks.load(Ordering::Acquire) {
            match self.add_thread(Some(code)) {
                Ok(()) => Ok(()),
                Err((code, e)) => {
                    queue.extend(code);
                    self.sharing.condvar.notify_one();
                    Err(e)
                }
            }
        } else {
            queue.push_back(code);
            self.sharing.condvar.notify_one();
            Ok(())
        }
    }

    /// Starts a thread that runs `initial_fn` first; on failure hands `initial_fn` back.
    fn add_thread(&self, initial_fn: Option<Task>) -> Result<(), (Option<Task>, io::Error)> {
        let sharing = self.sharing.clone();
        // The thread takes its first task from here, so that it is still ours if the
        // thread cannot be started.
        let slot = Arc::new(Mutex::new(initial_fn));
        let thread_slot = slot.clone();

        let started = (self.spawner)(Box::new(move || {
            let sharing = sharing;
            let _active_guard = Registration::new(&sharing.active_tasks);

            let initial_fn = thread_slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            drop(thread_slot);
            if let Some(mut f) = initial_fn {
                f();
            }

            loop {
                let mut task: Task = {
                    let mut todo = sharing.todo.lock().unwrap_or_else(|e| e.into_inner());

                    let task;
                    loop {
                        if let Some(poped_task) = todo.pop_front() {
                            task = poped_task;
                            break;
                        }
                        let _waiting_guard = Registration::new(&sharing.waiting_tasks);

                        let received =
                            if sharing.active_tasks.load(Ordering::Acquire) <= MIN_THREADS {
                                todo = sharing
                                    .condvar
                                    .wait(todo)
                                    .unwrap_or_else(|e| e.into_inner());
                                true
                            } else {
                                let (new_lock, waitres) = sharing
                                    .condvar
                                    .wait_timeout(todo, Duration::from_millis(5000))
                                    .unwrap_or_else(|e| e.into_inner());
                                todo = new_lock;
                                !waitres.timed_out()
                            };

                        if !received && todo.is_empty() {
                            return;
                        }
                    }

                    task
                };

                task();
            }
        }));
        started.map_err(|e| {
            let task = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            (task, e)
        })
    }
}

impl Drop for TaskPool {
    fn drop(&mut self) {
        self.sharing
            .active_tasks
            .store(999_999_999, Ordering::Release);
        self.sharing.condvar.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    // postd patch: each task of a burst gets a thread of its own at once, rather than
    // queueing behind a thread that was woken for an earlier task.
    #[test]
    fn every_task_of_a_burst_starts_at_once() {
        let pool = TaskPool::new();
        // Let the pool's own threads reach their wait.
        thread::sleep(Duration::from_millis(100));
        let (started, starts) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let released = Arc::new(Mutex::new(released));
        const BURST: usize = 20;
        for _ in 0..BURST {
            let started = started.clone();
            let released = released.clone();
            pool.spawn(Box::new(move || {
                started.send(()).ok();
                // Held until the test ends, as a long connection would be.
                let _ = released.lock().map(|r| r.recv());
            }))
            .unwrap();
        }
        for n in 0..BURST {
            assert!(
                starts.recv_timeout(Duration::from_secs(10)).is_ok(),
                "only {} of {} tasks started",
                n,
                BURST
            );
        }
        drop(release);
    }

    /// postd patch: a connection whose thread cannot be started is served by the next
    /// thread that becomes free; the failure is returned, not a panic.
    #[test]
    fn a_task_whose_thread_cannot_start_waits_for_a_free_thread() {
        // The pool's own MIN_THREADS threads start; no other thread ever can.
        let started_threads = Arc::new(AtomicUsize::new(0));
        let counter = started_threads.clone();
        let pool = TaskPool::with_spawner(Box::new(move |f| {
            if counter.fetch_add(1, Ordering::SeqCst) >= MIN_THREADS {
                Err(io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    "no more threads",
                ))
            } else {
                thread::Builder::new().spawn(f).map(|_| ())
            }
        }));
        // Occupy every thread of the pool (a task that finds no waiting thread is queued
        // until one takes it).
        let (release, released) = mpsc::channel::<()>();
        let released = Arc::new(Mutex::new(released));
        let (started, starts) = mpsc::channel();
        for _ in 0..MIN_THREADS {
            let released = released.clone();
            let started = started.clone();
            let _ = pool.spawn(Box::new(move || {
                started.send(()).ok();
                released.lock().unwrap().recv().ok();
            }));
        }
        for _ in 0..MIN_THREADS {
            starts.recv_timeout(Duration::from_secs(10)).unwrap();
        }

        let (done, finished) = mpsc::channel();
        let result = pool.spawn(Box::new(move || {
            done.send("ran").ok();
        }));
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::OutOfMemory);
        assert!(
            finished.recv_timeout(Duration::from_millis(200)).is_err(),
            "no thread was free"
        );

        release.send(()).unwrap();
        assert_eq!(
            finished.recv_timeout(Duration::from_secs(10)).unwrap(),
            "ran"
        );
        for _ in 1..MIN_THREADS {
            release.send(()).unwrap();
        }
    }
}
