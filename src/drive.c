/*-------------------------------------------------------------------------
 *
 * drive.c
 *		The leader's message loops: ping-pong, with one message in flight
 *		round the ring at a time, and pipelined, with many.
 *
 * All queue calls are non-blocking; when a pass makes no progress the leader
 * waits through test_shm_mq_ring_wait(), which also forwards any error a
 * worker has reported.  A queue that detaches under us means a worker is
 * gone, and the call fails with that worker's own error when it sent one.
 *
 * IDENTIFICATION
 *		src/drive.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "ring.h"

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
 * whenever we were woken rather than merely polling.
 */
void
test_shm_mq_ring_wait(test_shm_mq_ring *ring)
{
	if (test_shm_mq_wait(&ring->waiter))
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
	int			sent = 0;
	int			received = 0;

	while (received < repeat_count)
	{
		bool		progress = false;
		shm_mq_result res;
		Size		nbytes;
		void	   *data;

		/*
		 * A send that would block must be retried with the same arguments;
		 * every copy is the same message, so that holds.
		 */
		if (sent < repeat_count)
		{
			res = test_shm_mq_send(ring->send_queue, message_size, message,
								   true, true);
			if (res == SHM_MQ_SUCCESS)
			{
				sent++;
				progress = true;
			}
			else if (res == SHM_MQ_DETACHED)
				test_shm_mq_ring_broken(ring, true);
		}

		/*
		 * Receive even before a whole copy has gone out: a message larger than
		 * the queues gets through only as we drain it.
		 */
		res = shm_mq_receive(ring->receive_queue, &nbytes, &data, true);
		if (res == SHM_MQ_SUCCESS)
		{
			received++;
			progress = true;
			if (verify)
				verify_message(message_size, message, nbytes, data);
		}
		else if (res == SHM_MQ_DETACHED)
			test_shm_mq_ring_broken(ring, false);

		if (progress)
			test_shm_mq_waiter_progress(&ring->waiter);
		else
			test_shm_mq_ring_wait(ring);
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
		test_shm_mq_ring_wait(ring);
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
		test_shm_mq_ring_wait(ring);
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
