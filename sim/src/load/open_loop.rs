//! Sending an open loop's requests on their [`Schedule`], and measuring each from its
//! intended start: a request that went out late because its sender was behind is charged for
//! the wait, as wrk2 and k6's constant-arrival-rate do (no coordinated omission).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use super::Schedule;

/// One request of the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent<T> {
    pub index: usize,
    pub intended: Instant,
    /// From its intended start to its answer.
    pub latency: Duration,
    pub answer: T,
}

/// Sends every request of `schedule` through `send` (given its index and intended start),
/// each on its own task at its due time however many are in flight (Parts A and B: students
/// do not wait for each other), and returns them in order.
pub async fn drive<T, F, Fut>(schedule: &Schedule, send: F) -> Vec<Sent<T>>
where
    F: Fn(usize, Instant) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut in_flight = tokio::task::JoinSet::new();
    for index in 0..schedule.len() {
        let intended = schedule.due(index).await;
        let request = send(index, intended);
        in_flight.spawn(async move {
            let answer = request.await;
            Sent { index, intended, latency: intended.elapsed(), answer }
        });
    }
    let mut sent = Vec::with_capacity(schedule.len());
    while let Some(done) = in_flight.join_next().await {
        sent.push(done.expect("an open-loop request panicked"));
    }
    sent.sort_by_key(|s| s.index);
    sent
}

/// Sends every request of `schedule` through `send` from one sender, in order: a request goes
/// at its due time or once the one before it is answered, whichever is later (Part C's
/// producer, whose appends keep event-time order). Stops at the first error.
pub async fn drive_in_order<T, E, F, Fut>(schedule: &Schedule, mut send: F) -> Result<Vec<Sent<T>>, E>
where
    F: FnMut(usize, Instant) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut sent = Vec::with_capacity(schedule.len());
    for index in 0..schedule.len() {
        let intended = schedule.due(index).await;
        let answer = send(index, intended).await?;
        sent.push(Sent { index, intended, latency: intended.elapsed(), answer });
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten requests due every 100 ms; the fourth's answer takes 1 s. The one sender is stalled
    /// behind it, and the requests due meanwhile go out late: each is charged from when it was
    /// due, not from when the sender got to it.
    #[tokio::test(start_paused = true)]
    async fn a_sender_stalled_for_a_second_is_charged_for_the_wait() {
        let schedule = Schedule::new((0..10).map(|i| Duration::from_millis(100 * i)).collect());
        let sent = drive_in_order(&schedule, |index, _| async move {
            if index == 3 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok::<_, ()>(tokio::time::Instant::now())
        })
        .await
        .unwrap();
        let ms = |d: Duration| d.as_millis() as u64;
        let charged: Vec<u64> = sent.iter().map(|s| ms(s.latency)).collect();
        // Request 3 was due at 300 ms and answered at 1300; 4 was due at 400 and sent at 1300,
        // and so on: 900, 800, … 400 ms each, although each was answered at once.
        assert_eq!(charged, [0, 0, 0, 1000, 900, 800, 700, 600, 500, 400]);
        let from_sending: Vec<u64> = sent.iter().map(|s| ms(s.answer - s.intended.max(sent[3].answer))).collect();
        assert!(from_sending[4..].iter().all(|l| *l == 0), "measured from when they went out, the wait would vanish");
    }

    #[tokio::test(start_paused = true)]
    async fn many_senders_send_on_time_whatever_the_answers() {
        let schedule = Schedule::new((0..5).map(|i| Duration::from_millis(100 * i)).collect());
        let start = schedule.start();
        let sent = drive(&schedule, |_, _| async move {
            let went = tokio::time::Instant::now();
            tokio::time::sleep(Duration::from_secs(1)).await;
            went
        })
        .await;
        let went: Vec<u64> = sent.iter().map(|s| (s.answer - start).as_millis() as u64).collect();
        assert_eq!(went, [0, 100, 200, 300, 400], "no request waits for an answer");
        assert!(sent.iter().all(|s| s.latency == Duration::from_secs(1)));
    }
}
