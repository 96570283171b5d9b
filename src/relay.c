/*-------------------------------------------------------------------------
 *
 * relay.c
 *		The middle of a round trip, in each worker: relay every message from
 *		the queue before us to the queue after us until the ring comes
 *		apart.
 *
 * Worker k of N reads data queue k - 1 and writes data queue k.  What it
 * sends on for each message it receives is relay_work()'s to say: that is
 * the one function to replace for a worker that does real work on each
 * message.  A worker whose strategy batches holds each small message back
 * until it knows whether another follows, so that only the last of a run
 * is flushed.
 *
 * Between the calls of a kept ring there is nothing to relay: once its
 * polling would sleep, the worker is idle, connects if it has not yet, gives
 * back the buffer in which a large message was put together, so that it
 * holds no more memory than a fresh worker, and leaves the waiting to the
 * kept ring (keep.h).
 *
 * IDENTIFICATION
 *		src/relay.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/dsm.h"
#include "storage/proc.h"
#include "utils/memutils.h"

#include "keep.h"
#include "relay.h"

/*
 * What holding a message back costs and saves.  Held back, a message is
 * copied once more, into held[]; sent on at once, it is flushed, which moves
 * the queue's counter and the receiver's latch between CPUs, some hundreds
 * of nanoseconds, or, if the receiver sleeps, wakes it through the kernel,
 * tens of microseconds.  A copy of up to COPY_BELOW_FLUSH bytes costs less
 * than the first, so such a message is always held back; one of up to
 * HELD_MESSAGE_MAX bytes, a page or two, costs much less than the second,
 * so it is held back while the receiver sleeps.  Larger ones are sent on at
 * once and flushed.
 */
#define COPY_BELOW_FLUSH	1024
#define HELD_MESSAGE_MAX	8192

/*
 * A message larger than this, received, leaves a buffer as large behind in
 * the input queue's handle; a worker that goes idle after one gives the
 * buffer back.  Smaller ones cost less than a fresh worker's own memory,
 * which is a few hundred kilobytes.
 */
#define IDLE_BUFFER_MAX		(64 * 1024)

static bool hold_back(test_shm_mq_relay *relay, Size nbytes);
static void relay_work(test_shm_mq_relay *relay, Size nbytes,
					   const void *data, Size *out_nbytes,
					   const void **out_data);
static void attach_input(test_shm_mq_relay *relay);
static bool wait_for_peer(test_shm_mq_relay *relay,
						  test_shm_mq_wait_event event);
static void go_idle(test_shm_mq_relay *relay, bool between_messages);
static void connect_now(test_shm_mq_relay *relay);
static void report_running(test_shm_mq_relay *relay);
static bool forward_message(test_shm_mq_relay *relay, Size nbytes,
							const void *data, bool flush);

/*
 * Attach our ends of the data queues, count ourselves ready, and get ready
 * to wait.  relay must outlive the worker's time in the ring: the queues'
 * handles live in it until the worker exits.
 */
void
test_shm_mq_relay_start(test_shm_mq_relay *relay, test_shm_mq_header *header,
						int worker_number, dsm_segment *segment, shm_toc *toc,
						test_shm_mq_wait_slot *slot)
{
	int			nworkers = header->workers_total;
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
	 * callbacks: a kept ring must read as lost before any neighbour sees a
	 * queue go.
	 */
	test_shm_mq_keep_watch_worker(segment, header, worker_number);

	relay->idle = false;
	test_shm_mq_waiter_init(&relay->waiter, &header->wait, slot,
							nworkers + 1, false);
	relay->receiver = test_shm_mq_wait_slot_of(shm_toc_lookup(toc,
															  TEST_SHM_MQ_KEY_WAIT_SLOTS(nworkers),
															  false),
											   worker_number < nworkers ?
											   worker_number + 1 : 0);
	relay->batch = test_shm_mq_waiter_batches(&relay->waiter);

	report_running(relay);
	test_shm_mq_state_count_ready(header);
}

/*
 * What to send on for a message received: the message itself.
 *
 * This is the one function to replace for a worker that does real work on
 * each message.  data is valid until the next receive; what *out_data
 * points to must stay valid until the next call, so a worker that builds a
 * new message keeps it in a buffer of its own, reused from call to call.
 * A message sent by reference arrives as the reference, not as the message
 * (area.c).
 */
static void
relay_work(test_shm_mq_relay *relay, Size nbytes, const void *data,
		   Size *out_nbytes, const void **out_data)
{
	*out_nbytes = nbytes;
	*out_data = data;
}

/*
 * Relay messages from input to output until either queue detaches or the
 * leader closes the ring.
 *
 * With batch set, a message is not flushed to the next process while another
 * has already arrived behind it, where that pays (hold_back()): the message
 * is held until we know whether one follows, and only the last of a run is
 * flushed, before we wait.  shm_mq has no call that flushes without
 * sending, so holding the last message back is how we flush before waiting.
 * A message that came after a wait is sent on at once: one trip at a time,
 * as in a ping-pong, none follows it, and the look for one would only
 * delay it behind the wake-up that acknowledging it sends upstream.
 */
void
test_shm_mq_relay_messages(test_shm_mq_relay *relay)
{
	char		held[HELD_MESSAGE_MAX];
	Size		held_bytes = 0;
	bool		have_held = false;
	bool		waited = true;	/* since the last message came */

	for (;;)
	{
		shm_mq_result res;
		Size		nbytes;
		void	   *data;
		Size		out_nbytes;
		const void *out_data;

		/* While messages keep coming we never wait, so look here too. */
		CHECK_FOR_INTERRUPTS();
		if (test_shm_mq_connect_due)
			connect_now(relay);

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
				waited = true;
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
			relay->idle = false;
			report_running(relay);
		}

		/* Another message follows the held one, so it needs no flush. */
		if (have_held && !forward_message(relay, held_bytes, held, false))
			return;
		have_held = false;

		relay_work(relay, nbytes, data, &out_nbytes, &out_data);
		if (!waited && hold_back(relay, out_nbytes))
		{
			memcpy(held, out_data, out_nbytes);
			held_bytes = out_nbytes;
			have_held = true;
		}
		else if (!forward_message(relay, out_nbytes, out_data, true))
			return;
		waited = false;
	}
}

/*
 * Should a message of nbytes be held back until we know whether another
 * follows?  Only where batching, and only where the flush it saves costs
 * more than the copy it takes (see COPY_BELOW_FLUSH): the receiver's wait
 * slot says whether it sleeps.
 */
static bool
hold_back(test_shm_mq_relay *relay, Size nbytes)
{
	if (!relay->batch || nbytes > HELD_MESSAGE_MAX)
		return false;
	return nbytes <= COPY_BELOW_FLUSH ||
		pg_atomic_read_u32(&relay->receiver->asleep) != 0;
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
 * the leader woke us to leave, or, kept, it ended.
 *
 * A kept ring between calls is polled for what is left of our budget, so
 * that calls made in quick succession find us awake; once we would sleep,
 * we are idle, and the kept ring decides how long we wait.
 */
static bool
wait_for_peer(test_shm_mq_relay *relay, test_shm_mq_wait_event event)
{
	if (test_shm_mq_state_closed(relay->header))
		return false;
	if (test_shm_mq_keep_between_calls(relay->header) &&
		test_shm_mq_wait_would_sleep(&relay->waiter))
	{
		bool		just_idle = !relay->idle;

		if (just_idle)
			go_idle(relay, event == TEST_SHM_MQ_WAIT_EVENT_RECEIVE);
		return test_shm_mq_keep_idle(relay->header, relay->worker_number,
									 just_idle);
	}
	(void) test_shm_mq_wait(&relay->waiter, event);
	return !test_shm_mq_state_closed(relay->header);
}

/*
 * The ring has no call: connect, so that pg_stat_activity shows the idle
 * worker, and give back what a large message left behind.  between_messages
 * says we wait to receive, so that the input handle holds no message and
 * may be replaced.
 */
static void
go_idle(test_shm_mq_relay *relay, bool between_messages)
{
	if (between_messages && relay->largest_received > IDLE_BUFFER_MAX)
		attach_input(relay);
	test_shm_mq_worker_connect();
	relay->idle = true;
}

/*
 * The worker has run long enough to be shown: connect, between messages,
 * and say what it does.
 */
static void
connect_now(test_shm_mq_relay *relay)
{
	test_shm_mq_worker_connect();
	if (!relay->idle)
		report_running(relay);
}

/*
 * Say in pg_stat_activity which call of whose ring this worker serves.
 */
static void
report_running(test_shm_mq_relay *relay)
{
	char		activity[64];

	snprintf(activity, sizeof(activity), "call " UINT64_FORMAT " of PID %d",
			 pg_atomic_read_u64(&relay->header->call_number),
			 (int) relay->header->leader_pid);
	pgstat_report_activity(STATE_RUNNING, activity);
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
