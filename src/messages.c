/*-------------------------------------------------------------------------
 *
 * messages.c
 *		The leader's message loops: ping-pong, with one message in flight
 *		round the ring at a time, and pipelined, with many.
 *
 * All queue calls are non-blocking; when a pass makes no progress the leader
 * waits through ring_wait(), which also forwards any error a worker has
 * reported.  A queue that detaches under us means a worker is gone, and the
 * call fails with that worker's own error when it sent one.  How the message
 * travels, copied or by reference, is the carrier's business (carrier.h):
 * the loops send what it puts, and check what it resolves.
 *
 * IDENTIFICATION
 *		src/messages.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "utils/timestamp.h"

#include "carrier.h"

/* Where a pipeline stands: its copies sent and received, and the next one. */
typedef struct pipeline
{
	test_shm_mq_ring *ring;
	test_shm_mq_carrier carrier;
	int			repeat_count;
	bool		verify;
	bool		batch;			/* move copies in bursts (wait.h) */
	int			sent;
	int			received;
	bool		room;			/* the carrier took the last copy offered */
	bool		have_pending;	/* a copy placed but not yet accepted */
	Size		pending_bytes;
	const void *pending;
} pipeline;

static bool send_burst(pipeline *p);
static bool receive_burst(pipeline *p);
static void ring_wait(test_shm_mq_ring *ring, test_shm_mq_wait_event event);
static void send_message(test_shm_mq_ring *ring, Size nbytes,
						 const void *data);
static void receive_message(test_shm_mq_ring *ring, Size *nbytes,
							void **data);
static void verify_message(Size original_size, const char *original,
						   Size final_size, const char *final);

/*
 * Check a repeat count given at the SQL level.
 */
void
test_shm_mq_check_repeat_count(int repeat_count)
{
	if (repeat_count < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("repeat count must not be negative")));
}

/*
 * Send a message round the ring repeat_count times, one trip at a time.
 *
 * Each trip sends what the previous one brought back, so damage done anywhere
 * on the way accumulates, and the last message to arrive must equal the
 * first one sent.  With a repeat count of zero nothing is sent, which leaves
 * the cost of setting up and taking down the ring.
 */
void
test_shm_mq_ping_pong(test_shm_mq_ring *ring, Size message_size,
					  const char *message, int repeat_count)
{
	test_shm_mq_carrier carrier;
	Size		nbytes;
	void	   *data;
	const char *back = NULL;
	Size		back_size = 0;
	int			trip;

	if (repeat_count == 0)
		return;

	test_shm_mq_carrier_open(&carrier, ring, message, message_size, 1);
	(void) test_shm_mq_carrier_put(&carrier, &nbytes, (const void **) &data);
	ring->most_in_flight = Max(ring->most_in_flight, 1);
	for (trip = 0; trip < repeat_count; trip++)
	{
		/*
		 * What we received stays valid until the next receive on the same
		 * queue, which comes only after it has been sent on.
		 */
		send_message(ring, nbytes, data);
		receive_message(ring, &nbytes, &data);
		back = test_shm_mq_carrier_resolve(&carrier, nbytes, data, &back_size);
		CHECK_FOR_INTERRUPTS();
	}
	verify_message(message_size, message, back_size, back);
	test_shm_mq_carrier_release(&carrier);
	test_shm_mq_carrier_count(&carrier, repeat_count);
	test_shm_mq_carrier_close(&carrier);
}

/*
 * Send repeat_count copies of a message round the ring while receiving them
 * back, with as many in flight as the queues, and the carrier, hold.
 *
 * This works with no workers, the leader's one queue looping back to itself,
 * because neither side of the loop ever blocks.  Each copy that comes back is
 * checked when verify is set.
 */
void
test_shm_mq_pipeline(test_shm_mq_ring *ring, Size message_size,
					 const char *message, int repeat_count, bool verify)
{
	pipeline	p;

	memset(&p, 0, sizeof(p));
	p.ring = ring;
	p.repeat_count = repeat_count;
	p.verify = verify;
	p.batch = test_shm_mq_waiter_batches(&ring->waiter);
	test_shm_mq_carrier_open(&p.carrier, ring, message, message_size,
							 repeat_count);

	while (p.received < repeat_count)
	{
		bool		progress = send_burst(&p);

		/*
		 * Receive even before a whole copy has gone out: a message larger
		 * than the queues gets through only as we drain it.
		 */
		if (receive_burst(&p))
			progress = true;

		/*
		 * A pass that makes progress never waits, and with no workers every
		 * pass does; a burst lasts as long as the queues let it.  So
		 * interrupts are checked for every message, not only in waits.  Out
		 * of room, we wait for a copy to come back, not to send.
		 */
		if (progress)
			test_shm_mq_waiter_progress(&ring->waiter);
		else
			ring_wait(ring, p.sent < repeat_count && p.room ?
					  TEST_SHM_MQ_WAIT_EVENT_SEND :
					  TEST_SHM_MQ_WAIT_EVENT_RECEIVE);
	}
	test_shm_mq_carrier_count(&p.carrier, repeat_count);
	test_shm_mq_carrier_close(&p.carrier);
}

/*
 * Send what the queue takes now: one copy, or, batching, copies until the
 * queue is full or the carrier has no room.  Returns whether any went.
 *
 * Batching, a send that finds the queue full wakes the worker, which it
 * needs only once per burst, not once per message; and only the last copy
 * is flushed, since until then the next send either succeeds, so we do not
 * wait, or finds the queue full, which flushes.  So no worker waits on data
 * we hold back.  A carrier that may refuse a copy for want of room has every
 * copy flushed: a refusal, not only a full queue, may end the burst.
 *
 * A send that would block must be retried with the same arguments, so the
 * copy placed for it is kept until the queue accepts it.
 */
static bool
send_burst(pipeline *p)
{
	bool		progress = false;

	p->room = true;
	while (p->sent < p->repeat_count)
	{
		bool		flush = !p->batch || p->sent == p->repeat_count - 1 ||
			test_shm_mq_carrier_flushes_each(&p->carrier);
		shm_mq_result res;

		CHECK_FOR_INTERRUPTS();
		if (!p->have_pending &&
			!test_shm_mq_carrier_put(&p->carrier, &p->pending_bytes,
									 &p->pending))
		{
			p->room = false;
			break;
		}
		p->have_pending = true;
		res = test_shm_mq_send(p->ring->send_queue, p->pending_bytes,
							   p->pending, true, flush);
		if (res == SHM_MQ_WOULD_BLOCK)
			break;
		if (res == SHM_MQ_DETACHED)
			test_shm_mq_ring_broken(p->ring, true);
		p->have_pending = false;
		p->sent++;
		p->ring->most_in_flight = Max(p->ring->most_in_flight,
									  p->sent - p->received);
		progress = true;
		if (!p->batch)
			break;
	}
	return progress;
}

/*
 * Receive what has come back: one copy, or, batching, all that has.
 * Returns whether any came.
 */
static bool
receive_burst(pipeline *p)
{
	bool		progress = false;

	while (p->received < p->repeat_count)
	{
		shm_mq_result res;
		Size		nbytes;
		void	   *data;
		Size		message_size;
		const char *message;

		CHECK_FOR_INTERRUPTS();
		res = shm_mq_receive(p->ring->receive_queue, &nbytes, &data, true);
		if (res == SHM_MQ_WOULD_BLOCK)
			break;
		if (res == SHM_MQ_DETACHED)
			test_shm_mq_ring_broken(p->ring, false);
		message = test_shm_mq_carrier_resolve(&p->carrier, nbytes, data,
											  &message_size);
		if (p->verify)
			verify_message(p->carrier.message_size, p->carrier.message,
						   message_size, message);
		test_shm_mq_carrier_release(&p->carrier);
		p->received++;
		progress = true;
		if (!p->batch)
			break;
	}
	return progress;
}

/*
 * Wait for the ring to make progress possible, forwarding worker errors
 * whenever we were woken rather than merely polling.  event says what we
 * wait for.
 */
static void
ring_wait(test_shm_mq_ring *ring, test_shm_mq_wait_event event)
{
	if (test_shm_mq_wait(&ring->waiter, event))
		test_shm_mq_forward_worker_errors(ring);
}

/*
 * Hold the ring open for milliseconds with nothing in flight, still
 * forwarding any error a worker reports and servicing interrupts.
 */
void
test_shm_mq_idle(test_shm_mq_ring *ring, int milliseconds)
{
	TimestampTz start = GetCurrentTimestamp();
	double		left_ms = milliseconds;

	while (left_ms > 0)
	{
		test_shm_mq_sleep(TEST_SHM_MQ_WAIT_EVENT_BENCH_IDLE, (long) left_ms + 1);
		test_shm_mq_forward_worker_errors(ring);

		left_ms = milliseconds - test_shm_mq_ms_since(start);
	}
}

/*
 * Send one whole message on the leader's outgoing queue.
 */
static void
send_message(test_shm_mq_ring *ring, Size nbytes, const void *data)
{
	for (;;)
	{
		shm_mq_result res;

		res = test_shm_mq_send(ring->send_queue, nbytes, data, true, true);
		if (res == SHM_MQ_SUCCESS)
			break;
		if (res == SHM_MQ_DETACHED)
			test_shm_mq_ring_broken(ring, true);
		ring_wait(ring, TEST_SHM_MQ_WAIT_EVENT_SEND);
	}
	test_shm_mq_waiter_progress(&ring->waiter);
}

/*
 * Receive one whole message from the leader's incoming queue.
 */
static void
receive_message(test_shm_mq_ring *ring, Size *nbytes, void **data)
{
	for (;;)
	{
		shm_mq_result res;

		res = shm_mq_receive(ring->receive_queue, nbytes, data, true);
		if (res == SHM_MQ_SUCCESS)
			break;
		if (res == SHM_MQ_DETACHED)
			test_shm_mq_ring_broken(ring, false);
		ring_wait(ring, TEST_SHM_MQ_WAIT_EVENT_RECEIVE);
	}
	test_shm_mq_waiter_progress(&ring->waiter);
}

/*
 * Fail unless a message that came back equals the one sent.
 */
static void
verify_message(Size original_size, const char *original,
			   Size final_size, const char *final)
{
	Size		offset;

	if (final_size != original_size)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("message corrupted"),
				 errdetail("The message sent was %zu bytes long, but the one received is %zu bytes long.",
						   original_size, final_size)));

	if (memcmp(original, final, original_size) == 0)
		return;

	for (offset = 0; original[offset] == final[offset]; offset++)
		;
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("message corrupted"),
			 errdetail("The message received first differs from the one sent at byte %zu of %zu.",
					   offset, original_size)));
}
