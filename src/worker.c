/*-------------------------------------------------------------------------
 *
 * worker.c
 *		A ring worker: attach the leader's segment, take our place in the
 *		ring, and relay every message from the queue before us to the queue
 *		after us until the ring comes apart.
 *
 * Worker k of N reads data queue k - 1 and writes data queue k.  Its errors
 * go to the leader through its own error queue, redirected with pqmq before
 * anything else can fail.  SIGTERM ends it at its next wait or message, and
 * the "terminating background worker" error reaches the leader that way too.
 *
 * A worker leaves, without a word, as soon as it finds its ring closed: the
 * leader closes it when the call is over, successful or not, and wakes every
 * worker.  A worker that starts after its leader has given up finds the ring
 * closed, or its segment gone, and leaves the same way: that is no error.
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
 * segment, so that the leader's next call can say what became of it.
 *
 * IDENTIFICATION
 *		src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "libpq/pqmq.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/timestamp.h"

#include "test_shm_mq_ext.h"
#include "wait.h"

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

/* Set once we exit with nothing left to tell; see exit_worker(). */
static bool leaving_cleanly = false;

/* What the relay loop needs to know. */
typedef struct relay_state
{
	test_shm_mq_header *header;
	int			worker_number;
	dsm_segment *segment;
	shm_mq	   *input_queue;
	MemoryContext input_context;	/* holds input and its buffer */
	Size		largest_received;	/* since the ring last went idle */
	shm_mq_handle *input;
	shm_mq_handle *output;
	test_shm_mq_waiter waiter;
	bool		batch;			/* hold small messages back, see
								 * relay_messages() */
	bool		idle;			/* reported idle, the ring being kept */
} relay_state;

pg_noreturn static void leave_ring(dsm_segment *segment, int worker_number,
								   const char *reason);
pg_noreturn static void exit_worker(void);
static void skip_library_teardown(void);
static bool join_ring(test_shm_mq_header *header, int worker_number);
static bool ring_closed(test_shm_mq_header *header);
static bool wait_for_peer(relay_state *relay, test_shm_mq_wait_event event);
static bool wait_while_kept(relay_state *relay, bool between_messages);
static void attach_input(relay_state *relay);
static bool stand_down(relay_state *relay);
static void leaving_kept_ring(dsm_segment *segment, Datum arg);
static void relay_messages(relay_state *relay);
static bool forward_message(relay_state *relay, Size nbytes,
							const void *data, bool flush);

/*
 * Background worker entry point; bgw_main_arg is the segment's handle.
 */
void
test_shm_mq_ext_worker_main(Datum main_arg)
{
	test_shm_mq_worker_args args;
	dsm_segment *segment;
	shm_toc    *toc;
	test_shm_mq_header *header;
	shm_mq	   *mq;
	int			nworkers;

	/*
	 * Static: leaving_kept_ring() reads it on the way out, and an error
	 * leaves this function for StartBackgroundWorker()'s handler first.
	 */
	static relay_state relay;

	/* SIGTERM is serviced at the next CHECK_FOR_INTERRUPTS(). */
	pqsignal(SIGTERM, die);
	atexit(skip_library_teardown);

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));

	/*
	 * Join the ring before unblocking signals: a leader that closed it before
	 * we joined withdrew our registration, which, once we have started,
	 * sends us SIGTERM; and a worker that finds its ring gone or closed has
	 * nothing to report.  The segment is gone when dsm_attach() finds no
	 * segment, or one that, under a reused handle, has another magic number
	 * or belongs to another ring.
	 */
	segment = dsm_attach(DatumGetUInt32(main_arg));
	if (segment == NULL)
		leave_ring(NULL, args.worker_number, "its segment is gone");
	toc = shm_toc_attach(TEST_SHM_MQ_MAGIC, dsm_segment_address(segment));
	if (toc == NULL)
		leave_ring(segment, args.worker_number, "its segment is gone");
	header = shm_toc_lookup(toc, TEST_SHM_MQ_KEY_HEADER, false);
	nworkers = header->workers_total;
	if (args.worker_number < 1 || args.worker_number > nworkers)
		elog(ERROR, "worker number %d is out of range for a ring of %d workers",
			 args.worker_number, nworkers);
	if (header->leader_pid != args.leader_pid ||
		header->ring_number != args.ring_number)
		leave_ring(segment, args.worker_number, "its segment is gone");
	if (!join_ring(header, args.worker_number))
		leave_ring(segment, args.worker_number, "the ring was closed");

	/* From here on, whatever we report reaches the leader. */
	mq = shm_toc_lookup(toc,
						TEST_SHM_MQ_KEY_ERROR_QUEUE(nworkers, args.worker_number),
						false);
	shm_mq_set_sender(mq, MyProc);
	pq_redirect_to_shm_mq(segment, shm_mq_attach(mq, segment, NULL));
	BackgroundWorkerUnblockSignals();

	/*
	 * Connect as the leader's user, which puts us in pg_stat_activity under
	 * that role; the application name says which worker we are, and whose.
	 * A worker reads no catalog, so it connects to no database: that costs
	 * it half its start-up, and makes its exit lighter too.
	 */
	BackgroundWorkerInitializeConnectionByOid(InvalidOid, args.user_id,
											  TEST_SHM_MQ_CONNECTION_FLAGS);
	pgstat_report_appname(MyBgworkerEntry->bgw_name);
	test_shm_mq_init_wait_events();
	if (ring_closed(header))
		leave_ring(segment, args.worker_number, "the ring was closed");

	mq = shm_toc_lookup(toc, TEST_SHM_MQ_KEY_DATA_QUEUE(args.worker_number - 1),
						false);
	shm_mq_set_receiver(mq, MyProc);
	relay.header = header;
	relay.worker_number = args.worker_number;
	relay.segment = segment;
	relay.input_queue = mq;
	relay.input_context = NULL;
	attach_input(&relay);

	mq = shm_toc_lookup(toc, TEST_SHM_MQ_KEY_DATA_QUEUE(args.worker_number),
						false);
	shm_mq_set_sender(mq, MyProc);
	relay.output = shm_mq_attach(mq, segment, NULL);

	/*
	 * After the queues, so that on the way out it runs before their detach
	 * callbacks: the ring must read as lost before any neighbour sees a
	 * queue go.
	 */
	on_dsm_detach(segment, leaving_kept_ring, PointerGetDatum(&relay));

	SpinLockAcquire(&header->mutex);
	header->workers_ready++;
	SpinLockRelease(&header->mutex);
	SetLatch(&header->leader->procLatch);

	pgstat_report_activity(STATE_RUNNING, NULL);
	relay.batch = test_shm_mq_batching(header->wait_strategy);
	relay.idle = false;
	test_shm_mq_waiter_init(&relay.waiter, header->wait_strategy,
							header->spin_budget_us, nworkers + 1,
							header->online_cpus, &header->sleep_until,
							false);
	relay_messages(&relay);

	/*
	 * Detach before the rest of exiting, so that our neighbours see our
	 * queues go at once and their exits overlap ours.
	 */
	dsm_detach(segment);
	exit_worker();
}

/*
 * Exit quietly, detaching the segment if we have one: the leader is done
 * with the ring, or has given up on it, so nothing went wrong.
 */
static void
leave_ring(dsm_segment *segment, int worker_number, const char *reason)
{
	elog(DEBUG1, "test_shm_mq_ext worker %d leaves: %s",
		 worker_number, reason);
	if (segment != NULL)
		dsm_detach(segment);
	exit_worker();
}

/*
 * Exit after leaving the ring: nothing went wrong.
 *
 * proc_exit() runs all of PostgreSQL's exit callbacks and then exit(), whose
 * atexit handlers belong to the libraries the server links, OpenSSL's and
 * ICU's among them, and free memory that the kernel is about to reclaim
 * anyway; that took a worker most of a millisecond, which the leader, which
 * waits for its workers, paid on every call.  skip_library_teardown() is
 * registered after those handlers, so it runs first, and once we are leaving
 * cleanly it ends the process there.
 */
static void
exit_worker(void)
{
	leaving_cleanly = true;
	proc_exit(0);
}

/*
 * atexit handler: see exit_worker().  Any other exit, an error's included,
 * goes through every handler as usual.  The one cost: should an exit
 * callback fail after exit_worker(), its FATAL is logged, but the exit code
 * becomes 0, which for a worker never restarted only changes how the
 * postmaster logs its exit.  Builds that count coverage, or check for leaks,
 * at exit lose a leaving worker's figures.
 */
static void
skip_library_teardown(void)
{
	if (leaving_cleanly)
		_exit(0);
}

/*
 * Take our place in the ring: record our PID and PGPROC, so that the leader
 * can name us and wake us.  Returns false, recording nothing, if the leader
 * has already closed the ring; it then will not wake us, and needs not.
 */
static bool
join_ring(test_shm_mq_header *header, int worker_number)
{
	bool		open;

	SpinLockAcquire(&header->mutex);
	open = pg_atomic_read_u32(&header->state) == TEST_SHM_MQ_RING_OPEN;
	if (open)
	{
		header->workers[worker_number - 1].pid = MyProcPid;
		header->workers[worker_number - 1].proc = MyProc;
	}
	SpinLockRelease(&header->mutex);
	return open;
}

/*
 * Has the ring been closed, or lost?  Cheap enough to ask after every wait:
 * the state changes seldom, so its cache line stays shared.
 */
static bool
ring_closed(test_shm_mq_header *header)
{
	uint32		state = pg_atomic_read_u32(&header->state);

	return state == TEST_SHM_MQ_RING_CLOSED || state == TEST_SHM_MQ_RING_LOST;
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
attach_input(relay_state *relay)
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
stand_down(relay_state *relay)
{
	test_shm_mq_header *header = relay->header;
	bool		closed = false;
	int			worker;

	if (!test_shm_mq_slot_waiter_present())
		return false;

	SpinLockAcquire(&header->mutex);
	if (pg_atomic_read_u32(&header->state) == TEST_SHM_MQ_RING_KEPT)
	{
		pg_atomic_write_u32(&header->state, TEST_SHM_MQ_RING_CLOSED);
		closed = true;
	}
	SpinLockRelease(&header->mutex);
	if (!closed)
		return false;

	elog(DEBUG1, "test_shm_mq_ext worker %d: kept ring stands down for a session waiting for a worker slot",
		 relay->worker_number);
	for (worker = 0; worker < header->workers_total; worker++)
	{
		PGPROC	   *proc;

		SpinLockAcquire(&header->mutex);
		proc = header->workers[worker].proc;
		SpinLockRelease(&header->mutex);
		if (proc != NULL && proc != MyProc)
			SetLatch(&proc->procLatch);
	}
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
	relay_state *relay = (relay_state *) DatumGetPointer(arg);
	test_shm_mq_header *header = relay->header;
	TimestampTz now = GetCurrentTimestamp();
	bool		pin = false;

	SpinLockAcquire(&header->mutex);
	if (pg_atomic_read_u32(&header->state) == TEST_SHM_MQ_RING_KEPT)
	{
		if (now < header->keep_until)
		{
			pg_atomic_write_u32(&header->state, TEST_SHM_MQ_RING_LOST);
			header->lost_worker = relay->worker_number;
			pin = true;
		}
		else
			pg_atomic_write_u32(&header->state, TEST_SHM_MQ_RING_CLOSED);
	}
	SpinLockRelease(&header->mutex);

	if (pin)
		dsm_pin_segment(segment);
}

/*
 * Wait for a neighbour to make progress possible: event says whether for a
 * message or for room to send one.  Returns false once the ring is closed:
 * the leader woke us to leave, or, kept, it expired.
 */
static bool
wait_for_peer(relay_state *relay, test_shm_mq_wait_event event)
{
	switch (pg_atomic_read_u32(&relay->header->state))
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
	return !ring_closed(relay->header);
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
wait_while_kept(relay_state *relay, bool between_messages)
{
	test_shm_mq_header *header = relay->header;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz keep_until;
	uint32		state;

	SpinLockAcquire(&header->mutex);
	state = pg_atomic_read_u32(&header->state);
	keep_until = header->keep_until;
	if (state == TEST_SHM_MQ_RING_KEPT && now >= keep_until)
	{
		state = TEST_SHM_MQ_RING_CLOSED;
		pg_atomic_write_u32(&header->state, state);
	}
	SpinLockRelease(&header->mutex);

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
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 (long) ((keep_until - now + 999) / 1000),
					 test_shm_mq_wait_event_info(TEST_SHM_MQ_WAIT_EVENT_KEPT));
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	return !ring_closed(header);
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
static void
relay_messages(relay_state *relay)
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
forward_message(relay_state *relay, Size nbytes, const void *data, bool flush)
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
