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
 * IDENTIFICATION
 *		src/messages.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "portability/instr_time.h"

#include "ring.h"

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
	int			trip;

	for (trip = 0; trip < repeat_count; trip++)
	{
		/*
		 * What we received stays valid until the next receive on the same
		 * queue, which comes only after it has been sent on.
		 */
		send_message(ring, nbytes, data);
		receive_message(ring, &nbytes, &data);
		CHECK_FOR_INTERRUPTS();
	}

	if (repeat_count > 0)
		verify_message(message_size, message, nbytes, data);
}

/*
 * Send repeat_count copies of a message round the ring while receiving them
 * back, with as many in flight as the queues hold.
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
 * Hold the ring open for milliseconds with nothing in flight, still
 * forwarding any error a worker reports and servicing interrupts.
 */
void
test_shm_mq_idle(test_shm_mq_ring *ring, int milliseconds)
{
	instr_time	start;
	instr_time	elapsed;
	double		left_ms = milliseconds;

	INSTR_TIME_SET_CURRENT(start);
	while (left_ms > 0)
	{
		test_shm_mq_sleep(TEST_SHM_MQ_WAIT_EVENT_BENCH_IDLE, (long) left_ms + 1);
		test_shm_mq_forward_worker_errors(ring);

		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, start);
		left_ms = milliseconds - INSTR_TIME_GET_MILLISEC(elapsed);
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
