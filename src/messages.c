/*-------------------------------------------------------------------------
 *
 * messages.c
 *		The leader's message loops: ping-pong, with one message in flight
 *		round the ring at a time, and pipelined, with many.
 *
 * All queue calls are non-blocking; when a pass makes no progress the leader
 * waits through ring_wait(), which also forwards any error a worker has
 * reported.  A queue that detaches under us means a worker is
 * gone, and the call fails with that worker's own error when it sent one.
 *
 * A message at least test_shm_mq_ext.zero_copy_min_bytes long travels by
 * reference (area.c): the leader copies it into the ring's area, sends only
 * the reference, and reads the message itself when the reference comes
 * back.  Ping-pong places it once for every trip; a pipeline places each
 * copy, and frees it when it returns, with no more in flight than
 * test_shm_mq_zero_copy_bound() allows.
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

#include "ring.h"

static void ring_wait(test_shm_mq_ring *ring, test_shm_mq_wait_event event);
static void send_message(test_shm_mq_ring *ring, Size nbytes,
						 const void *data);
static void receive_message(test_shm_mq_ring *ring, Size *nbytes,
							void **data);
static void verify_message(Size original_size, const char *original,
						   Size final_size, const char *final);
static void pipeline_by_reference(test_shm_mq_ring *ring, Size message_size,
								  const char *message, int repeat_count,
								  bool verify);

/*
 * Most messages a zero-copy pipeline keeps in flight, whatever its bound in
 * bytes: deeper than this, a pipeline goes no faster.
 */
#define MAX_REFERENCES_IN_FLIGHT	65536

/*
 * The references a zero-copy pipeline has in flight, oldest first: the ring
 * returns them in the order they were sent.
 */
typedef struct in_flight_list
{
	test_shm_mq_reference *references;	/* circular, capacity entries */
	int			capacity;
	int			oldest;
	int			count;
	int			most;			/* the most ever in flight at once */
} in_flight_list;

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
	Size		nbytes = message_size;
	void	   *data = (void *) message;
	bool		by_reference = test_shm_mq_zero_copy(message_size);
	test_shm_mq_reference reference;
	int			trip;

	if (repeat_count == 0)
		return;

	if (by_reference)
	{
		test_shm_mq_area_open(ring, message_size);
		(void) test_shm_mq_area_put(ring, message_size, message, 0,
									&reference);
		nbytes = sizeof(reference);
		data = &reference;
	}

	for (trip = 0; trip < repeat_count; trip++)
	{
		/*
		 * What we received stays valid until the next receive on the same
		 * queue, which comes only after it has been sent on.  A reference
		 * must come back as it went.
		 */
		send_message(ring, nbytes, data);
		receive_message(ring, &nbytes, &data);
		if (by_reference)
		{
			(void) test_shm_mq_area_get(ring, nbytes, data, &reference);
			nbytes = sizeof(reference);
			data = &reference;
		}
		CHECK_FOR_INTERRUPTS();
	}

	if (by_reference)
	{
		verify_message(message_size, message, message_size,
					   test_shm_mq_area_get(ring, nbytes, data, &reference));
		test_shm_mq_area_free(ring, &reference);
	}
	else
		verify_message(message_size, message, nbytes, data);
}

/*
 * Send repeat_count copies of a message round the ring while receiving them
 * back, with as many in flight as the queues hold; a message sent by
 * reference has pipeline_by_reference() instead.
 *
 * This works with no workers, the leader's one queue looping back to itself,
 * because neither side of the loop ever blocks.  Each copy that comes back is
 * checked when verify is set.
 */
void
test_shm_mq_pipeline(test_shm_mq_ring *ring, Size message_size,
					 const char *message, int repeat_count, bool verify)
{
	bool		batch = test_shm_mq_batching(ring->waiter.strategy);
	int			sent = 0;
	int			received = 0;

	if (test_shm_mq_zero_copy(message_size))
	{
		pipeline_by_reference(ring, message_size, message, repeat_count,
							  verify);
		return;
	}

	while (received < repeat_count)
	{
		bool		progress = false;
		shm_mq_result res;
		Size		nbytes;
		void	   *data;

		/*
		 * Batching, send copies until the queue is full, then receive until
		 * it is empty: a send that finds the queue full wakes the worker,
		 * which it needs only once per burst, not once per message received.
		 * The reference design moves one message each way per pass.
		 *
		 * A send that would block must be retried with the same arguments;
		 * every copy is the same message, so that holds.  Batching, only the
		 * last copy is flushed: until then the next send either succeeds, so
		 * we do not wait, or finds the queue full, which flushes.  So no
		 * worker waits on data we hold back.
		 */
		while (sent < repeat_count)
		{
			bool		flush = !batch || sent == repeat_count - 1;

			CHECK_FOR_INTERRUPTS();
			res = test_shm_mq_send(ring->send_queue, message_size, message,
								   true, flush);
			if (res == SHM_MQ_WOULD_BLOCK)
				break;
			if (res == SHM_MQ_DETACHED)
				test_shm_mq_ring_broken(ring, true);
			sent++;
			progress = true;
			if (!batch)
				break;
		}

		/*
		 * Receive even before a whole copy has gone out: a message larger than
		 * the queues gets through only as we drain it.
		 */
		while (received < repeat_count)
		{
			CHECK_FOR_INTERRUPTS();
			res = shm_mq_receive(ring->receive_queue, &nbytes, &data, true);
			if (res == SHM_MQ_WOULD_BLOCK)
				break;
			if (res == SHM_MQ_DETACHED)
				test_shm_mq_ring_broken(ring, false);
			received++;
			progress = true;
			if (verify)
				verify_message(message_size, message, nbytes, data);
			if (!batch)
				break;
		}

		/*
		 * A pass that makes progress never waits, and with no workers every
		 * pass does; a burst lasts as long as the queues let it.  So
		 * interrupts are checked for every message, not only in waits.
		 */
		if (progress)
			test_shm_mq_waiter_progress(&ring->waiter);
		else
			ring_wait(ring, sent < repeat_count ?
								  TEST_SHM_MQ_WAIT_EVENT_SEND :
								  TEST_SHM_MQ_WAIT_EVENT_RECEIVE);
	}
}

/*
 * test_shm_mq_pipeline() for a message sent by reference.
 *
 * The same loop, but each copy is placed in the area just before it is
 * sent, and freed as soon as it is back and checked; the references in
 * flight are remembered, since the ring returns them in order, and only the
 * one expected next is resolved.  No more than the bound's worth of copies is
 * in flight: at the bound, or when the area has no room, the leader receives
 * before it sends again, as when the queue is full.  A copy placed but not
 * yet accepted by the queue is sent again as it is.  Every reference is
 * flushed: the bound, not only a full queue, may end a burst, and a
 * reference held back then would never reach the first worker.
 */
static void
pipeline_by_reference(test_shm_mq_ring *ring, Size message_size,
					  const char *message, int repeat_count, bool verify)
{
	bool		batch = test_shm_mq_batching(ring->waiter.strategy);
	Size		bound = test_shm_mq_zero_copy_bound(ring, message_size);
	in_flight_list in_flight;
	test_shm_mq_reference pending;
	bool		have_pending = false;
	int			sent = 0;
	int			received = 0;

	memset(&in_flight, 0, sizeof(in_flight));
	in_flight.capacity = (int) Min(bound / message_size,
								   (Size) Min(repeat_count,
											  MAX_REFERENCES_IN_FLIGHT));
	in_flight.capacity = Max(in_flight.capacity, 1);
	in_flight.references = palloc(mul_size(in_flight.capacity,
										   sizeof(test_shm_mq_reference)));
	test_shm_mq_area_open(ring, bound);

	while (received < repeat_count)
	{
		bool		progress = false;
		bool		room = true;
		shm_mq_result res;
		Size		nbytes;
		void	   *data;

		while (sent < repeat_count)
		{
			CHECK_FOR_INTERRUPTS();
			if (in_flight.count == in_flight.capacity ||
				(!have_pending &&
				 !test_shm_mq_area_put(ring, message_size, message,
									   in_flight.count, &pending)))
			{
				room = false;
				break;
			}
			have_pending = true;
			res = test_shm_mq_send(ring->send_queue, sizeof(pending),
								   &pending, true, true);
			if (res == SHM_MQ_WOULD_BLOCK)
				break;
			if (res == SHM_MQ_DETACHED)
				test_shm_mq_ring_broken(ring, true);
			in_flight.references[(in_flight.oldest + in_flight.count) %
								 in_flight.capacity] = pending;
			in_flight.count++;
			in_flight.most = Max(in_flight.most, in_flight.count);
			have_pending = false;
			sent++;
			progress = true;
			if (!batch)
				break;
		}

		while (received < sent)
		{
			test_shm_mq_reference *expected;
			const char *payload;

			CHECK_FOR_INTERRUPTS();
			res = shm_mq_receive(ring->receive_queue, &nbytes, &data, true);
			if (res == SHM_MQ_WOULD_BLOCK)
				break;
			if (res == SHM_MQ_DETACHED)
				test_shm_mq_ring_broken(ring, false);
			expected = &in_flight.references[in_flight.oldest];
			payload = test_shm_mq_area_get(ring, nbytes, data, expected);
			if (verify)
				verify_message(message_size, message, expected->nbytes,
							   payload);
			test_shm_mq_area_free(ring, expected);
			in_flight.oldest = (in_flight.oldest + 1) % in_flight.capacity;
			in_flight.count--;
			received++;
			progress = true;
			if (!batch)
				break;
		}

		/* Out of room, we wait for a message to come back, not to send. */
		if (progress)
			test_shm_mq_waiter_progress(&ring->waiter);
		else
			ring_wait(ring, sent < repeat_count && room ?
					  TEST_SHM_MQ_WAIT_EVENT_SEND :
					  TEST_SHM_MQ_WAIT_EVENT_RECEIVE);
	}

	elog(DEBUG1, "zero-copy pipeline: at most %d messages of %zu bytes in flight, bound %zu bytes",
		 in_flight.most, message_size, bound);
	pfree(in_flight.references);
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
