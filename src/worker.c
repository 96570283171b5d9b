/*-------------------------------------------------------------------------
 *
 * worker.c
 *		A ring worker's entry point: attach the leader's segment, join the
 *		ring, send our errors to the leader, then hand over to the relay
 *		(relay.c) until the ring comes apart, and exit; and connecting, once
 *		the worker has run long enough to be worth showing.
 *
 * A worker's errors go to the leader through its own error queue, redirected
 * with pqmq as soon as it has joined the ring.  What it raises before that,
 * which is only a failure to map the segment or a segment that is not a
 * ring's, reaches the server log alone; the leader then reports that the
 * worker exited without reporting an error, and points to the log.  SIGTERM
 * ends a worker at its next wait or message, and the "terminating background
 * worker" error reaches the leader through the queue too.
 *
 * A worker relays before it connects: connecting (InitPostgres) is what
 * puts it in pg_stat_activity, and costs more than a short call takes.  It
 * connects once it has run for test_shm_mq_ext.worker_connect_delay, as the
 * leader had it, or as soon as its ring is kept idle, as the role that made
 * the call, to no database, since it reads no catalog of one.  Until then ps
 * shows it, and so does test_shm_mq_rings, where the cluster-wide state
 * exists.
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
#include "postmaster/interrupt.h"
#include "tcop/tcopprot.h"
#include "utils/timeout.h"

#include "relay.h"
#include "stats.h"

/* Set by the connect timeout: test_shm_mq_worker_connect() is due. */
volatile sig_atomic_t test_shm_mq_connect_due = false;

/* Whom to connect as, and whether we have. */
static Oid	connect_as = InvalidOid;
static bool connected = false;
static TimeoutId connect_timeout = MAX_TIMEOUTS;

static test_shm_mq_header *join_segment(Datum main_arg,
										test_shm_mq_worker_args *args,
										dsm_segment **segment,
										shm_toc **toc);
static void redirect_errors(dsm_segment *segment, shm_toc *toc,
							int nworkers, int worker_number);
pg_noreturn static void leave_ring(dsm_segment *segment, const char *reason);
static void connect_due(void);
static void detach_at_exit(int code, Datum arg);

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
	test_shm_mq_wait_slot *slot;

	/*
	 * Static: the queues' handles in it are detached on the way out, and an
	 * error leaves this function for StartBackgroundWorker()'s handler
	 * first.
	 */
	static test_shm_mq_relay relay;

	/*
	 * SIGTERM is serviced at the next CHECK_FOR_INTERRUPTS(); a reload, by a
	 * kept ring's idle workers (keep.h).
	 */
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	header = join_segment(main_arg, &args, &segment, &toc);

	/*
	 * However we leave, on an error too, the segment goes before the rest of
	 * exiting: its detach callbacks count into the cluster-wide state, which
	 * may live in another segment that exiting detaches.
	 */
	before_shmem_exit(detach_at_exit, UInt32GetDatum(dsm_segment_handle(segment)));

	/* From here on, whatever we report reaches the leader. */
	redirect_errors(segment, toc, header->workers_total, args.worker_number);
	BackgroundWorkerUnblockSignals();
	test_shm_mq_init_wait_events();

	slot = test_shm_mq_wait_slot_of(shm_toc_lookup(toc,
												   TEST_SHM_MQ_KEY_WAIT_SLOTS(header->workers_total),
												   false),
									args.worker_number);
	test_shm_mq_stats_worker_joined(segment, header, args.worker_number,
									&slot->counts);

	connect_as = args.user_id;
	connect_timeout = RegisterTimeout(USER_TIMEOUT, connect_due);
	if (args.connect_delay_ms == 0)
		test_shm_mq_worker_connect();
	else
		enable_timeout_after(connect_timeout, args.connect_delay_ms);

	test_shm_mq_relay_start(&relay, header, args.worker_number, segment, toc,
							slot);
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
 * before_shmem_exit callback: detach the ring's segment, named by its handle
 * in arg, unless gone already.
 */
static void
detach_at_exit(int code, Datum arg)
{
	dsm_segment *segment = dsm_find_mapping(DatumGetUInt32(arg));

	if (segment != NULL)
		dsm_detach(segment);
}

/*
 * Timeout handler: the worker has run long enough to connect, at its next
 * look (test_shm_mq_connect_due).
 */
static void
connect_due(void)
{
	test_shm_mq_connect_due = true;
	SetLatch(MyLatch);
}

/*
 * Connect, if not yet, as the role that made the call, to no database: from
 * now on pg_stat_activity shows the worker, its application name saying
 * which worker it is, and whose.  Called between messages, or while the
 * ring idles.  A role that may no longer connect fails the worker here,
 * and its error reaches the leader.
 */
void
test_shm_mq_worker_connect(void)
{
	test_shm_mq_connect_due = false;
	if (connected)
		return;
	disable_timeout(connect_timeout, false);
	BackgroundWorkerInitializeConnectionByOid(InvalidOid, connect_as,
											  TEST_SHM_MQ_CONNECTION_FLAGS);
	pgstat_report_appname(MyBgworkerEntry->bgw_name);
	connected = true;
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
