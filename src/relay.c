/*-------------------------------------------------------------------------
 *
 * relay.c
 *		The middle of a round trip, in each worker: relay every message from
 *		the queue before us to the queue after us until the ring comes
 *		apart, and, between the calls of a kept ring, sleep until the next.
 *
 * Worker k of N reads data queue k - 1 and writes data queue k.  A worker
 * that batches holds each small message back until it knows whether another
 * follows, so that only the last of a run is flushed.
 *
 * Between the calls of a kept ring a worker first polls for what is left of
 * its adaptive budget, then is idle, as pg_stat_activity shows, and sleeps
 * until the next call's first message reaches it, or until the keepalive has
 * passed; then it closes the ring itself and leaves.  As it goes idle it
 * gives back the buffer in which a large message was put together, so that
 * it holds no more memory than a fresh worker.  Woken while idle, it looks
 * whether a session waits for a worker slot, and if one does, it closes the
 * ring and leaves, and so do the others.  A worker that leaves a kept ring
 * for any other reason, an error or a signal, marks it lost and pins its
 * segment, so that the leader's next call can say what became of it.  Every
 * such move is ring_state.c's.
 *
 * IDENTIFICATION
 *		src/relay.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/proc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "relay.h"

/*
 * Largest message a batching worker holds back, copied, to see whether
 * another follows.  Larger ones are sent on at once and flushed: copying them
 * costs more than a flush saves.
 */
#define HELD_MESSAGE_MAX	8192

/*
 * A message larger than this, received, leaves a buffer as large behind in
 * the input queue's handle; a worker that goes idle after one gives the
 * buffer back.  Smaller ones cost less than a fresh worker's own memory.
 */
#define IDLE_BUFFER_MAX		(64 * 1024)

static void attach_input(test_shm_mq_relay *relay);
static bool stand_down(test_shm_mq_relay *relay);
static void leaving_kept_ring(dsm_segment *segment, Datum arg);
static bool wait_for_peer(test_shm_mq_relay *relay,
						  test_shm_mq_wait_event event);
static bool wait_while_kept(test_shm_mq_relay *relay, bool between_messages);
static bool forward_message(test_shm_mq_relay *relay, Size nbytes,
							const void *data, bool flush);

/*
 * Attach our ends of the data queues, count ourselves ready, and get ready
 * to wait.  relay must outlive the worker's time in the ring: its detach
 * callback reads it on the way out, even after an error.
 */
void
test_shm_mq_relay_start(test_shm_mq_relay *relay, test_shm_mq_header *header,
						int worker_number, dsm_segment *segment, shm_toc *toc)
{
	shm_mq	   *mq;

	mq = shm_toc_lookup(toc, TEST_SHM_MQ_KEY_DATA_QUEUE(worker_number - 1),
						false);
	shm_mq_set_receiver(mq, MyProc);
	relay->header = header;
	relay->worker_number = worker_number;
	relay->segment = segment;
	relay->input_queue = mq;
	relay->input_context = NULL;
	attach_input(relay);

	mq = shm_toc_lookup(toc, TEST_SHM_MQ_KEY_DATA_QUEUE(worker_number),
						false);
	shm_mq_set_sender(mq, MyProc);
	relay->output = shm_mq_attach(mq, segment, NULL);

	/*
	 * After the queues, so that on the way out it runs before their detach
	 * callbacks: the ring must read as lost before any neighbour sees a
	 * queue go.
	 */
	on_dsm_detach(segment, leaving_kept_ring, PointerGetDatum(relay));

	test_shm_mq_state_count_ready(header);

	pgstat_report_activity(STATE_RUNNING, NULL);
	relay->batch = test_shm_mq_batching(header->wait_strategy);
	relay->idle = false;
	test_shm_mq_waiter_init(&relay->waiter, header->wait_strategy,
							header->spin_budget_us,
							header->workers_total + 1,
							header->online_cpus, &header->sleep_until,
							false);
}

/*
 * Copy messages from input to output until either queue detaches or the
 * leader closes the ring.
 *
 * With batch set, a message is not flushed to the next process while another
 * has already arrived behind it: each small message is held until we know
 * whether one follows, and only the last of a run is flushed, before we wait.
 * shm_mq has no call that flushes without sending, so holding the last
 * message back is how we flush before waiting.
 */
void
test_shm_mq_relay_messages(test_shm_mq_relay *relay)
{
	char		held[HELD_MESSAGE_MAX];
	Size		held_bytes = 0;
	bool		have_held = false;

	for (;;)
	{
		shm_mq_result res;
		Size		nbytes;
		void	   *data;

		/* While messages keep coming we never wait, so look here too. */
		CHECK_FOR_INTERRUPTS();

		res = shm_mq_receive(relay->input, &nbytes, &data, true);
		if (res == SHM_MQ_DETACHED)
		{
			/* Pass on what we hold; whether anyone reads it is not ours to know. */
			if (have_held)
				(void) forward_message(relay, held_bytes, held, true);
			return;
		}
		if (res == SHM_MQ_WOULD_BLOCK)
		{
			if (!have_held)
			{
				if (!wait_for_peer(relay, TEST_SHM_MQ_WAIT_EVENT_RECEIVE))
					return;
			}
			else if (!forward_message(relay, held_bytes, held, true))
				return;
			have_held = false;
			continue;
		}
		test_shm_mq_waiter_progress(&relay->waiter);
		relay->largest_received = Max(relay->largest_received, nbytes);
		if (relay->idle)
		{
			pgstat_report_activity(STATE_RUNNING, NULL);
			relay->idle = false;
		}

		/* Another message follows the held one, so it needs no flush. */
		if (have_held && !forward_message(relay, held_bytes, held, false))
			return;
		have_held = false;

		if (relay->batch && nbytes <= HELD_MESSAGE_MAX)
		{
			memcpy(held, data, nbytes);
			held_bytes = nbytes;
			have_held = true;
		}
		else if (!forward_message(relay, nbytes, data, true))
			return;
	}
}

/*
 * Send one message on, flushing it to the receiver if flush is set.  Returns
 * false if the queue has detached or the ring was closed.
 *
 * A send that would block is retried with the same arguments, as shm_mq
 * asks; a full queue flushes whatever we held back, so the receiver always
 * has something to do while we wait.
 */
static bool
forward_message(test_shm_mq_relay *relay, Size nbytes, const void *data,
				bool flush)
{
	shm_mq_result res;

	while ((res = test_shm_mq_send(relay->output, nbytes, data, true,
								   flush)) == SHM_MQ_WOULD_BLOCK)
	{
		if (!wait_for_peer(relay, TEST_SHM_MQ_WAIT_EVENT_SEND))
			return false;
	}
	if (res == SHM_MQ_DETACHED)
		return false;
	test_shm_mq_waiter_progress(&relay->waiter);
	return true;
}

/*
 * Wait for a neighbour to make progress possible: event says whether for a
 * message or for room to send one.  Returns false once the ring is closed:
 * the leader woke us to leave, or, kept, it expired.
 */
static bool
wait_for_peer(test_shm_mq_relay *relay, test_shm_mq_wait_event event)
{
	switch (test_shm_mq_state_peek(relay->header))
	{
		case TEST_SHM_MQ_RING_KEPT:

			/*
			 * Poll on for what is left of our budget, so that calls made in
			 * quick succession find us awake; once we would sleep, we are
			 * idle.
			 */
			if (test_shm_mq_wait_would_sleep(&relay->waiter))
				return wait_while_kept(relay,
									   event == TEST_SHM_MQ_WAIT_EVENT_RECEIVE);
			break;
		case TEST_SHM_MQ_RING_CLOSED:
		case TEST_SHM_MQ_RING_LOST:
			return false;
	}
	(void) test_shm_mq_wait(&relay->waiter, event);
	return !test_shm_mq_state_closed(relay->header);
}

/*
 * Sleep while the ring is kept between calls: until a call's first message
 * wakes us, the leader closes the ring, or keep_until passes.  Returns false
 * if the ring is closed, by us once keep_until has passed or for a session
 * waiting for a worker slot.  between_messages says we wait to receive, so
 * that the input handle holds no message and may be replaced.
 *
 * The leader claims a kept ring under the same lock, so it finds the ring
 * either still kept, and the workers staying, or closed, and builds another.
 */
static bool
wait_while_kept(test_shm_mq_relay *relay, bool between_messages)
{
	test_shm_mq_header *header = relay->header;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz keep_until;
	uint32		state;

	state = test_shm_mq_state_expire(header, now, &keep_until);

	if (state == TEST_SHM_MQ_RING_CLOSED || state == TEST_SHM_MQ_RING_LOST)
		return false;
	if (state != TEST_SHM_MQ_RING_KEPT)
		return true;			/* claimed meanwhile: look again */

	if (!relay->idle)
	{
		/* Idle from here: give back what a large message left behind. */
		if (between_messages && relay->largest_received > IDLE_BUFFER_MAX)
			attach_input(relay);
		pgstat_report_activity(STATE_IDLE, NULL);
		relay->idle = true;
	}
	else if (stand_down(relay))
		return false;

	/* Round up, so as to wake no earlier than keep_until. */
	test_shm_mq_sleep(TEST_SHM_MQ_WAIT_EVENT_KEPT,
					  (long) ((keep_until - now + 999) / 1000));
	return !test_shm_mq_state_closed(header);
}

/*
 * Attach our handle for the input queue, in a memory context of its own, so
 * that the buffer in which shm_mq puts a large message together can be given
 * back with it.  Any earlier handle goes, without detaching the queue: its
 * detach callback, registered with the first, stays.
 *
 * Only between messages, after a receive that would block: the handle then
 * holds no part of a message, and has told the sender of all it consumed.
 */
static void
attach_input(test_shm_mq_relay *relay)
{
	MemoryContext old_input_context = relay->input_context;
	MemoryContext oldcontext;

	relay->input_context = AllocSetContextCreate(TopMemoryContext,
												 "test_shm_mq_ext input queue",
												 ALLOCSET_SMALL_SIZES);
	oldcontext = MemoryContextSwitchTo(relay->input_context);
	relay->input = shm_mq_attach(relay->input_queue,
								 old_input_context == NULL ?
								 relay->segment : NULL,
								 NULL);
	MemoryContextSwitchTo(oldcontext);
	if (old_input_context != NULL)
		MemoryContextDelete(old_input_context);
	relay->largest_received = 0;
}

/*
 * Woken while the ring is kept: if a session waits for a worker slot, close
 * the ring, so that its workers' slots go to that session, and wake the
 * other workers to leave too.  Returns whether we closed it.  The leader
 * claims a kept ring under the same lock, so the ring is either claimed or
 * closed.
 */
static bool
stand_down(test_shm_mq_relay *relay)
{
	if (!test_shm_mq_slot_waiter_present() ||
		!test_shm_mq_state_stand_down(relay->header))
		return false;

	elog(DEBUG1, "%s: kept ring stands down for a session waiting for a worker slot",
		 MyBgworkerEntry->bgw_name);
	test_shm_mq_state_wake_workers(relay->header);
	return true;
}

/*
 * on_dsm_detach callback: leaving a ring that is still kept, before its
 * keepalive has passed, means something went wrong with us: mark the ring
 * lost, naming us, and pin the segment so that our error report outlives
 * us, for the leader's next call to read.  The leader unpins it.  After
 * keep_until, the ring is only closed, as if it had expired.
 */
static void
leaving_kept_ring(dsm_segment *segment, Datum arg)
{
	test_shm_mq_relay *relay = (test_shm_mq_relay *) DatumGetPointer(arg);

	if (test_shm_mq_state_lose(relay->header, relay->worker_number,
							   GetCurrentTimestamp()))
		dsm_pin_segment(segment);
}
