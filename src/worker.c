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
 * IDENTIFICATION
 *		src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "libpq/pqmq.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "tcop/tcopprot.h"

#include "test_shm_mq_ext.h"
#include "wait.h"

/*
 * Largest message a batching worker holds back, copied, to see whether
 * another follows.  Larger ones are sent on at once and flushed: copying them
 * costs more than a flush saves.
 */
#define HELD_MESSAGE_MAX	8192

static void relay_messages(shm_mq_handle *input, shm_mq_handle *output,
						   test_shm_mq_waiter *waiter, bool batch);
static bool forward_message(shm_mq_handle *output, Size nbytes,
							const void *data, bool flush,
							test_shm_mq_waiter *waiter);

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
	shm_mq_handle *input;
	shm_mq_handle *output;
	test_shm_mq_waiter waiter;
	int			nworkers;

	/* SIGTERM is serviced at the next CHECK_FOR_INTERRUPTS(). */
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));

	/*
	 * Until our error queue is attached, errors go only to the server log;
	 * the leader will see that we stopped without a word.
	 */
	segment = dsm_attach(DatumGetUInt32(main_arg));
	if (segment == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("could not map dynamic shared memory segment")));
	toc = shm_toc_attach(TEST_SHM_MQ_MAGIC, dsm_segment_address(segment));
	if (toc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("invalid magic number in dynamic shared memory segment")));
	header = shm_toc_lookup(toc, TEST_SHM_MQ_KEY_HEADER, false);
	nworkers = header->workers_total;
	if (args.worker_number < 1 || args.worker_number > nworkers)
		elog(ERROR, "worker number %d is out of range for a ring of %d workers",
			 args.worker_number, nworkers);

	SpinLockAcquire(&header->mutex);
	header->worker_pids[args.worker_number - 1] = MyProcPid;
	SpinLockRelease(&header->mutex);

	/* From here on, whatever we report reaches the leader. */
	mq = shm_toc_lookup(toc,
						TEST_SHM_MQ_KEY_ERROR_QUEUE(nworkers, args.worker_number),
						false);
	shm_mq_set_sender(mq, MyProc);
	pq_redirect_to_shm_mq(segment, shm_mq_attach(mq, segment, NULL));

	/*
	 * Connect as the leader's user to the leader's database, which puts us in
	 * pg_stat_activity; the application name says which worker we are.
	 */
	BackgroundWorkerInitializeConnectionByOid(args.database_id, args.user_id,
											  TEST_SHM_MQ_CONNECTION_FLAGS);
	pgstat_report_appname(MyBgworkerEntry->bgw_name);

	mq = shm_toc_lookup(toc, TEST_SHM_MQ_KEY_DATA_QUEUE(args.worker_number - 1),
						false);
	shm_mq_set_receiver(mq, MyProc);
	input = shm_mq_attach(mq, segment, NULL);

	mq = shm_toc_lookup(toc, TEST_SHM_MQ_KEY_DATA_QUEUE(args.worker_number),
						false);
	shm_mq_set_sender(mq, MyProc);
	output = shm_mq_attach(mq, segment, NULL);

	SpinLockAcquire(&header->mutex);
	header->workers_ready++;
	SpinLockRelease(&header->mutex);
	SetLatch(&header->leader->procLatch);

	pgstat_report_activity(STATE_RUNNING, NULL);
	test_shm_mq_waiter_init(&waiter, header->wait_strategy,
							header->spin_budget_us, nworkers + 1);
	relay_messages(input, output, &waiter,
				   test_shm_mq_batching(header->wait_strategy));

	/*
	 * Detach before the rest of exiting, so that the next worker round the
	 * ring sees our queues go at once and its own exit overlaps ours.
	 */
	dsm_detach(segment);
	proc_exit(0);
}

/*
 * Copy messages from input to output until either queue detaches.
 *
 * With batch set, a message is not flushed to the next process while another
 * has already arrived behind it: each small message is held until we know
 * whether one follows, and only the last of a run is flushed, before we wait.
 * shm_mq has no call that flushes without sending, so holding the last
 * message back is how we flush before waiting.
 */
static void
relay_messages(shm_mq_handle *input, shm_mq_handle *output,
			   test_shm_mq_waiter *waiter, bool batch)
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

		res = shm_mq_receive(input, &nbytes, &data, true);
		if (res == SHM_MQ_DETACHED)
		{
			/* Pass on what we hold; whether anyone reads it is not ours to know. */
			if (have_held)
				(void) forward_message(output, held_bytes, held, true, waiter);
			return;
		}
		if (res == SHM_MQ_WOULD_BLOCK)
		{
			if (!have_held)
				(void) test_shm_mq_wait(waiter);
			else if (!forward_message(output, held_bytes, held, true, waiter))
				return;
			have_held = false;
			continue;
		}
		test_shm_mq_waiter_progress(waiter);

		/* Another message follows the held one, so it needs no flush. */
		if (have_held &&
			!forward_message(output, held_bytes, held, false, waiter))
			return;
		have_held = false;

		if (batch && nbytes <= HELD_MESSAGE_MAX)
		{
			memcpy(held, data, nbytes);
			held_bytes = nbytes;
			have_held = true;
		}
		else if (!forward_message(output, nbytes, data, true, waiter))
			return;
	}
}

/*
 * Send one message on, flushing it to the receiver if flush is set.  Returns
 * false if the queue has detached.
 *
 * A send that would block is retried with the same arguments, as shm_mq
 * asks; a full queue flushes whatever we held back, so the receiver always
 * has something to do while we wait.
 */
static bool
forward_message(shm_mq_handle *output, Size nbytes, const void *data,
				bool flush, test_shm_mq_waiter *waiter)
{
	shm_mq_result res;

	while ((res = test_shm_mq_send(output, nbytes, data, true, flush)) ==
		   SHM_MQ_WOULD_BLOCK)
		(void) test_shm_mq_wait(waiter);
	if (res == SHM_MQ_DETACHED)
		return false;
	test_shm_mq_waiter_progress(waiter);
	return true;
}
