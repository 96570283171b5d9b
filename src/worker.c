/*-------------------------------------------------------------------------
 *
 * worker.c
 *		A ring worker's entry point: attach the leader's segment, join the
 *		ring, send our errors to the leader, connect, then hand over to the
 *		relay (relay.c) until the ring comes apart, and exit.
 *
 * A worker's errors go to the leader through its own error queue, redirected
 * with pqmq as soon as it has joined the ring.  What it raises before that,
 * which is only a failure to map the segment or a segment that is not a
 * ring's, reaches the server log alone; the leader then reports that the
 * worker exited without reporting an error, and points to the log.  SIGTERM
 * ends a worker at its next wait or message, and the "terminating background
 * worker" error reaches the leader through the queue too.
 *
 * A worker leaves, without a word, as soon as it finds its ring closed: the
 * leader closes it when the call is over, successful or not, and wakes every
 * worker.  A worker that starts after its leader has given up finds the ring
 * closed, or its segment gone, and leaves the same way: that is no error.
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
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "tcop/tcopprot.h"

#include "relay.h"

static test_shm_mq_header *join_segment(Datum main_arg,
										test_shm_mq_worker_args *args,
										dsm_segment **segment,
										shm_toc **toc);
static void redirect_errors(dsm_segment *segment, shm_toc *toc,
							int nworkers, int worker_number);
pg_noreturn static void leave_ring(dsm_segment *segment, const char *reason);

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

	/*
	 * Static: the queues' handles in it are detached on the way out, and an
	 * error leaves this function for StartBackgroundWorker()'s handler
	 * first.
	 */
	static test_shm_mq_relay relay;

	/* SIGTERM is serviced at the next CHECK_FOR_INTERRUPTS(). */
	pqsignal(SIGTERM, die);

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	header = join_segment(main_arg, &args, &segment, &toc);

	/* From here on, whatever we report reaches the leader. */
	redirect_errors(segment, toc, header->workers_total, args.worker_number);
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
	if (test_shm_mq_state_closed(header))
		leave_ring(segment, "the ring was closed");

	test_shm_mq_relay_start(&relay, header, args.worker_number, segment, toc);
	test_shm_mq_relay_messages(&relay);

	/*
	 * Detach before the rest of exiting, so that our neighbours see our
	 * queues go at once and their exits overlap ours.
	 */
	dsm_detach(segment);
	proc_exit(0);
}

/*
 * Attach the segment and join the ring, with signals still blocked: a leader
 * that closed the ring before we joined withdrew our registration, which,
 * once we have started, sends us SIGTERM; and a worker that finds its ring
 * gone or closed has nothing to report, and leaves here.  The segment is
 * gone when dsm_attach() finds no segment, or one that, under a reused
 * handle, has another magic number or belongs to another ring.
 *
 * An error raised here reaches the server log only: see the top of this
 * file.
 */
static test_shm_mq_header *
join_segment(Datum main_arg, test_shm_mq_worker_args *args,
			 dsm_segment **segment, shm_toc **toc)
{
	test_shm_mq_header *header;

	*segment = dsm_attach(DatumGetUInt32(main_arg));
	if (*segment == NULL)
		leave_ring(NULL, "its segment is gone");
	*toc = shm_toc_attach(TEST_SHM_MQ_MAGIC, dsm_segment_address(*segment));
	if (*toc == NULL)
		leave_ring(*segment, "its segment is gone");
	header = shm_toc_lookup(*toc, TEST_SHM_MQ_KEY_HEADER, false);
	if (args->worker_number < 1 || args->worker_number > header->workers_total)
		elog(ERROR, "worker number %d is out of range for a ring of %d workers",
			 args->worker_number, header->workers_total);
	if (header->leader_pid != args->leader_pid ||
		header->ring_number != args->ring_number)
		leave_ring(*segment, "its segment is gone");
	if (!test_shm_mq_state_join(header, args->worker_number))
		leave_ring(*segment, "the ring was closed");
	return header;
}

/*
 * Send everything we report from now on, errors included, through our error
 * queue to the leader.
 */
static void
redirect_errors(dsm_segment *segment, shm_toc *toc, int nworkers,
				int worker_number)
{
	shm_mq	   *mq;

	mq = shm_toc_lookup(toc,
						TEST_SHM_MQ_KEY_ERROR_QUEUE(nworkers, worker_number),
						false);
	shm_mq_set_sender(mq, MyProc);
	pq_redirect_to_shm_mq(segment, shm_mq_attach(mq, segment, NULL));
}

/*
 * Exit quietly, detaching the segment if we have one: the leader is done
 * with the ring, or has given up on it, so nothing went wrong.
 */
static void
leave_ring(dsm_segment *segment, const char *reason)
{
	elog(DEBUG1, "%s leaves: %s", MyBgworkerEntry->bgw_name, reason);
	if (segment != NULL)
		dsm_detach(segment);
	proc_exit(0);
}
