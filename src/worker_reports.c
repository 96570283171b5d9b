/*-------------------------------------------------------------------------
 *
 * worker_reports.c
 *		The leader's end of the workers' error queues: what a worker
 *		reports is thrown again in the leader, so the caller learns what went
 *		wrong, and a worker that exits without a word is reported too.
 *
 * Each worker redirects its error output to its own shm_mq with pqmq as soon
 * as it has joined the ring, so whatever it reports from then on arrives
 * here as a protocol ErrorResponse or NoticeResponse.  The leader parses it
 * and throws it again with the worker's message and SQLSTATE, adding a
 * context line that names the worker.  A worker sends its report before it
 * exits and detaches its queues, so once the ring breaks, the reason is
 * already waiting here.
 *
 * What a worker raises before its redirect (it could not map the segment,
 * for instance) goes to the server log only, as for any background worker;
 * the leader then sees the worker stop with nothing in its queue, and says
 * that it exited without reporting an error, with parallel.c's hint to look
 * in the server log.
 *
 * IDENTIFICATION
 *		src/worker_reports.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "libpq/pqmq.h"
#include "postmaster/bgworker.h"

#include "stats.h"

static bool receive_report(test_shm_mq_ring *ring, int worker_number,
						   ErrorData *edata);
static void rethrow_report(test_shm_mq_ring *ring, int worker_number,
						   ErrorData *edata);
static char *worker_context(test_shm_mq_ring *ring, int worker_number);
static int	errdetail_silent_exit(test_shm_mq_ring *ring, int worker_number);

/*
 * Forward whatever the workers have sent through their error queues.
 *
 * Notices and warnings are re-emitted as they are.  An error or fatal error
 * is rethrown as an ERROR in the leader; while the workers are still starting,
 * as "one or more workers failed to start" with the worker's words as detail.
 * Returns normally if no worker has reported an error.
 */
void
test_shm_mq_forward_worker_errors(test_shm_mq_ring *ring)
{
	int			worker;

	for (worker = 1; worker <= ring->nworkers; worker++)
	{
		ErrorData	edata;

		while (receive_report(ring, worker, &edata))
			rethrow_report(ring, worker, &edata);
	}
}

/*
 * Find out whether a worker has left the ring, and why.
 *
 * Returns NULL if every worker is still running and none has reported an
 * error; otherwise a sentence saying what became of the worker that went
 * first: in its own words if any worker sent an error, else by its number,
 * known_worker if the caller knows which went first, or the first found
 * stopped.  Notices and warnings pass through.  *silent says the worker sent
 * no error.
 */
char *
test_shm_mq_worker_departure(test_shm_mq_ring *ring, int known_worker,
							 bool *silent)
{
	int			gone = known_worker;
	int			worker;

	*silent = false;
	for (worker = 1; worker <= ring->nworkers; worker++)
	{
		ErrorData	edata;

		while (receive_report(ring, worker, &edata))
		{
			if (edata.elevel >= ERROR)
				return psprintf(_("Worker %d of %d reported: %s."),
								worker, ring->nworkers, edata.message);
			rethrow_report(ring, worker, &edata);
		}
	}

	for (worker = 1; gone == 0 && worker <= ring->nworkers; worker++)
	{
		pid_t		pid;

		if (GetBackgroundWorkerPid(ring->workers[worker - 1], &pid) !=
			BGWH_STARTED)
			gone = worker;
	}
	if (gone == 0)
		return NULL;
	*silent = true;
	return psprintf(_("Worker %d of %d exited without reporting an error."),
					gone, ring->nworkers);
}

/*
 * Receive the next report waiting in a worker's error queue, parsed into
 * edata.  Returns false if none is waiting, or the queue has detached.
 */
static bool
receive_report(test_shm_mq_ring *ring, int worker_number, ErrorData *edata)
{
	shm_mq_handle *mqh = ring->error_queues[worker_number - 1];
	shm_mq_result res;
	StringInfoData msg;
	Size		nbytes;
	void	   *data;
	char		msgtype;

	if (mqh == NULL)
		return false;

	res = shm_mq_receive(mqh, &nbytes, &data, true);
	if (res == SHM_MQ_WOULD_BLOCK)
		return false;
	if (res == SHM_MQ_DETACHED)
	{
		/* The worker is gone, and has said all it will say. */
		shm_mq_detach(mqh);
		ring->error_queues[worker_number - 1] = NULL;
		return false;
	}

	initStringInfo(&msg);
	appendBinaryStringInfo(&msg, data, nbytes);
	msgtype = pq_getmsgbyte(&msg);
	if (msgtype != 'E' && msgtype != 'N')
		elog(ERROR, "unexpected message type \"%c\" from " TEST_SHM_MQ_WORKER_TITLE,
			 msgtype, worker_number, ring->nworkers);
	pq_parse_errornotice(&msg, edata);
	pfree(msg.data);

	/* A worker's FATAL ends the worker; for the leader it ends the call. */
	edata->elevel = Min(edata->elevel, ERROR);
	return true;
}

/*
 * Throw a worker's report again in the leader, naming the worker.  Returns
 * only for notices and warnings.
 */
static void
rethrow_report(test_shm_mq_ring *ring, int worker_number, ErrorData *edata)
{
	char	   *context = worker_context(ring, worker_number);

	if (edata->elevel >= ERROR && !ring->all_workers_ready)
	{
		test_shm_mq_count(TEST_SHM_MQ_WORKERS_FAILED, 1);
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("one or more workers failed to start"),
				 edata->detail ?
				 errdetail("Worker %d of %d reported: %s. %s",
						   worker_number, ring->nworkers, edata->message,
						   edata->detail) :
				 errdetail("Worker %d of %d reported: %s.",
						   worker_number, ring->nworkers, edata->message),
				 edata->hint ? errhint("%s", edata->hint) : 0,
				 errcontext("%s", context)));
	}

	if (edata->context)
		edata->context = psprintf("%s\n%s", edata->context, context);
	else
		edata->context = context;
	ThrowErrorData(edata);
}

/*
 * The context line that names a worker: its number, the ring's size and,
 * once the worker has written it, its PID.
 */
static char *
worker_context(test_shm_mq_ring *ring, int worker_number)
{
	pid_t		pid;

	pid = test_shm_mq_state_worker(ring->header, worker_number).pid;
	if (pid == 0)
		return psprintf(_(TEST_SHM_MQ_WORKER_TITLE),
						worker_number, ring->nworkers);
	return psprintf(_(TEST_SHM_MQ_WORKER_TITLE ", PID %d"),
					worker_number, ring->nworkers, (int) pid);
}

/*
 * Fail the call because a data queue detached under us.
 *
 * A worker that failed reported why before its queues detached, and its own
 * words are better than ours; only a worker that vanished without a word gets
 * the generic message.
 */
void
test_shm_mq_ring_broken(test_shm_mq_ring *ring, bool sending)
{
	test_shm_mq_forward_worker_errors(ring);

	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 sending ? errmsg("could not send message") :
			 errmsg("could not receive message"),
			 errdetail_silent_exit(ring, 0)));
	pg_unreachable();
}

/*
 * Fail the call because a worker stopped before the ring was ready.
 *
 * A worker sends its error before it exits, so whatever it had to say is in
 * its queue by now, and is thrown first; otherwise it said nothing.
 */
void
test_shm_mq_worker_failed_to_start(test_shm_mq_ring *ring, int worker_number)
{
	test_shm_mq_forward_worker_errors(ring);
	test_shm_mq_count(TEST_SHM_MQ_WORKERS_FAILED, 1);

	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
			 errmsg("one or more workers failed to start"),
			 errdetail_silent_exit(ring, worker_number)));
	pg_unreachable();
}

/*
 * The detail and hint of an error about a worker that exited without
 * reporting an error: worker_number, or with 0 any worker of the ring.
 */
static int
errdetail_silent_exit(test_shm_mq_ring *ring, int worker_number)
{
	if (worker_number == 0)
		errdetail("A worker in the ring exited without reporting an error.");
	else
		errdetail("Worker %d of %d exited without reporting an error.",
				  worker_number, ring->nworkers);
	return test_shm_mq_errhint_silent_exit();
}

/*
 * The hint for any report of a worker that exited without a word: as
 * parallel.c says of its workers, the server log has what it logged.
 */
int
test_shm_mq_errhint_silent_exit(void)
{
	return errhint("More details may be available in the server log.");
}
