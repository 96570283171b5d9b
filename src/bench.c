/*-------------------------------------------------------------------------
 *
 * bench.c
 *		test_shm_mq_bench(): time one ring, its setup and its messages, under
 *		a chosen wait strategy, and report the figures as one row.
 *
 * Modes:
 *	pingpong	one message in flight: repeat_count trips round the ring
 *	pipelined	repeat_count copies in flight at once, not verified, so that
 *				the figure is the transport's
 *	idle		one trip, then the ring sits idle for repeat_count
 *				milliseconds, then one more trip: for watching what idle
 *				workers cost
 *
 * Setup counts creating the segment, starting the workers and waiting for
 * them, and taking it all down again, or, with a kept ring, claiming it and
 * keeping it again; the run counts the messages alone.  Times come from
 * instr_time, the leader's CPU time from getrusage(), and what each process
 * of the ring decided as it waited from the ring's wait slots (wait.h):
 * arrays with the leader first, then each worker.
 *
 * IDENTIFICATION
 *		src/bench.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/resource.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "portability/instr_time.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "ring.h"

PG_FUNCTION_INFO_V1(test_shm_mq_bench);

#define BENCH_COLUMNS	(10 + TEST_SHM_MQ_WAIT_COUNTS)

typedef enum bench_mode
{
	BENCH_PINGPONG,
	BENCH_PIPELINED,
	BENCH_IDLE
} bench_mode;

/* What a call of test_shm_mq_bench() asks for. */
typedef struct bench_args
{
	int64		queue_size;
	int32		message_size;
	int32		repeat_count;
	int32		nworkers;
	bench_mode	mode;
	test_shm_mq_wait_strategy strategy;
	TupleDesc	tupdesc;		/* of the row returned */
} bench_args;

/* What one run measured. */
typedef struct bench_result
{
	double		setup_ms;		/* acquiring the ring, and being done */
	double		run_ms;			/* the messages alone */
	int64		messages;
	int64		bytes_by_reference;
	int			most_in_flight; /* copies out at once, at the most */
	double		leader_cpu_ms;
	int			nprocesses;
	test_shm_mq_wait_counts *waits; /* the run's, by process: nprocesses */
} bench_result;

static void read_args(FunctionCallInfo fcinfo, bench_args *args);
static int64 run_messages(test_shm_mq_ring *ring, const bench_args *args,
						  const char *message);
static Datum result_row(const bench_args *args, const bench_result *result);
static bench_mode parse_mode(const char *name);
static double cpu_ms(void);
static test_shm_mq_wait_counts *snapshot_waits(test_shm_mq_ring *ring);
static void subtract_waits(test_shm_mq_wait_counts *after,
						   const test_shm_mq_wait_counts *before,
						   int nprocesses);
static Datum wait_count_array(const bench_result *result, int count);

/*
 * test_shm_mq_bench(queue_size int8, message_size int4, repeat_count int4,
 *					 num_workers int4, mode text, wait_strategy text)
 *		returns (setup_ms, run_ms, messages, bytes, msgs_per_sec,
 *				 mb_per_sec, us_per_round_trip, leader_cpu_ms, the wait
 *				 counts by process, bytes_by_reference, most_in_flight)
 *
 * A null wait_strategy means test_shm_mq_ext.wait_strategy.  The other
 * arguments must not be null.
 */
Datum
test_shm_mq_bench(PG_FUNCTION_ARGS)
{
	bench_args	args;
	bench_result result;
	char	   *message;
	test_shm_mq_ring *ring;
	instr_time	start;
	instr_time	ready;
	instr_time	done;
	instr_time	end;
	double		cpu_start;
	test_shm_mq_wait_counts *waits_before;
	int			nest_level;
	int32		i;

	read_args(fcinfo, &args);

	message = palloc(args.message_size);
	for (i = 0; i < args.message_size; i++)
		message[i] = 'a' + i % 26;

	/*
	 * The workers connect as they start, not during the run, which would
	 * then time their connecting too: setup_ms holds all that readies the
	 * ring, and run_ms the messages alone.
	 */
	nest_level = NewGUCNestLevel();
	(void) set_config_option("test_shm_mq_ext.worker_connect_delay", "0",
							 PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	INSTR_TIME_SET_CURRENT(start);
	ring = test_shm_mq_ring_acquire(args.queue_size, args.nworkers,
									args.strategy);
	INSTR_TIME_SET_CURRENT(ready);
	AtEOXact_GUC(true, nest_level);
	waits_before = snapshot_waits(ring);
	cpu_start = cpu_ms();

	result.messages = run_messages(ring, &args, message);

	result.leader_cpu_ms = cpu_ms() - cpu_start;
	INSTR_TIME_SET_CURRENT(done);
	result.nprocesses = args.nworkers + 1;
	result.waits = snapshot_waits(ring);
	subtract_waits(result.waits, waits_before, result.nprocesses);
	result.bytes_by_reference = ring->bytes_by_reference;
	result.most_in_flight = ring->most_in_flight;
	test_shm_mq_ring_done(ring, fcinfo->flinfo->fn_oid);
	INSTR_TIME_SET_CURRENT(end);

	INSTR_TIME_SUBTRACT(end, done);
	INSTR_TIME_SUBTRACT(done, ready);
	INSTR_TIME_SUBTRACT(ready, start);
	result.setup_ms = INSTR_TIME_GET_MILLISEC(ready) +
		INSTR_TIME_GET_MILLISEC(end);
	result.run_ms = INSTR_TIME_GET_MILLISEC(done);

	PG_RETURN_DATUM(result_row(&args, &result));
}

/*
 * Read and check the arguments, failing before any ring is touched.
 */
static void
read_args(FunctionCallInfo fcinfo, bench_args *args)
{
	int			arg;

	for (arg = 0; arg < 5; arg++)
	{
		if (PG_ARGISNULL(arg))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("only the wait strategy may be null")));
	}
	args->queue_size = PG_GETARG_INT64(0);
	args->message_size = PG_GETARG_INT32(1);
	args->repeat_count = PG_GETARG_INT32(2);
	args->nworkers = PG_GETARG_INT32(3);
	args->mode = parse_mode(text_to_cstring(PG_GETARG_TEXT_PP(4)));
	args->strategy = test_shm_mq_default_wait_strategy;
	if (!PG_ARGISNULL(5))
		args->strategy = test_shm_mq_parse_wait_strategy(text_to_cstring(PG_GETARG_TEXT_PP(5)));

	if (args->message_size < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("message size must not be negative")));
	if ((Size) args->message_size > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("message size %d exceeds the maximum of %zu bytes",
						args->message_size, (Size) MaxAllocSize)));
	test_shm_mq_check_repeat_count(args->repeat_count);
	test_shm_mq_check_worker_count(args->nworkers,
								   args->mode == BENCH_PIPELINED ? 0 : 1);

	if (get_call_result_type(fcinfo, NULL, &args->tupdesc) !=
		TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
}

/*
 * Send the messages the mode asks for; returns how many went round.
 */
static int64
run_messages(test_shm_mq_ring *ring, const bench_args *args,
			 const char *message)
{
	switch (args->mode)
	{
		case BENCH_PINGPONG:
			test_shm_mq_ping_pong(ring, args->message_size, message,
								  args->repeat_count);
			return args->repeat_count;
		case BENCH_PIPELINED:
			test_shm_mq_pipeline(ring, args->message_size, message,
								 args->repeat_count, false);
			return args->repeat_count;
		case BENCH_IDLE:
			test_shm_mq_ping_pong(ring, args->message_size, message, 1);
			test_shm_mq_idle(ring, args->repeat_count);
			test_shm_mq_ping_pong(ring, args->message_size, message, 1);
			return 2;
	}
	pg_unreachable();
}

/*
 * The row test_shm_mq_bench() returns.  Rates are null when nothing was
 * timed.
 */
static Datum
result_row(const bench_args *args, const bench_result *result)
{
	Datum		values[BENCH_COLUMNS];
	bool		nulls[BENCH_COLUMNS];
	double		run_ms = result->run_ms;
	int64		messages = result->messages;
	int			i;

	memset(nulls, 0, sizeof(nulls));
	values[0] = Float8GetDatum(result->setup_ms);
	values[1] = Float8GetDatum(run_ms);
	values[2] = Int64GetDatum(messages);
	values[3] = Int64GetDatum(messages * args->message_size);
	if (run_ms > 0 && messages > 0)
	{
		values[4] = Float8GetDatum(messages / (run_ms / 1000.0));
		values[5] = Float8GetDatum(messages * (double) args->message_size /
								   (run_ms * 1000.0));
		values[6] = Float8GetDatum(run_ms * 1000.0 / messages);
	}
	else
		nulls[4] = nulls[5] = nulls[6] = true;
	values[7] = Float8GetDatum(result->leader_cpu_ms);
	for (i = 0; i < TEST_SHM_MQ_WAIT_COUNTS; i++)
		values[8 + i] = wait_count_array(result, i);
	values[8 + TEST_SHM_MQ_WAIT_COUNTS] = Int64GetDatum(result->bytes_by_reference);
	values[9 + TEST_SHM_MQ_WAIT_COUNTS] = Int32GetDatum(result->most_in_flight);

	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(args->tupdesc),
											 values, nulls));
}

/*
 * Map a mode name to the mode; reject any other name.
 */
static bench_mode
parse_mode(const char *name)
{
	if (strcmp(name, "pingpong") == 0)
		return BENCH_PINGPONG;
	if (strcmp(name, "pipelined") == 0)
		return BENCH_PIPELINED;
	if (strcmp(name, "idle") == 0)
		return BENCH_IDLE;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid benchmark mode \"%s\"", name),
			 errhint("Valid modes are \"pingpong\", \"pipelined\" and \"idle\".")));
	pg_unreachable();
}

/*
 * CPU time this process has used so far, user and system, in milliseconds.
 */
static double
cpu_ms(void)
{
	struct rusage usage;

	getrusage(RUSAGE_SELF, &usage);
	return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000.0 +
		(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1000.0;
}

/*
 * A copy of every process's wait counts, the leader first: they grow for as
 * long as the ring lives, so a run's are the difference of two copies.
 */
static test_shm_mq_wait_counts *
snapshot_waits(test_shm_mq_ring *ring)
{
	int			nprocesses = ring->nworkers + 1;
	test_shm_mq_wait_counts *copy;
	int			process;

	copy = palloc(sizeof(test_shm_mq_wait_counts) * nprocesses);
	for (process = 0; process < nprocesses; process++)
		copy[process] = test_shm_mq_ring_wait_slot(ring, process)->counts;
	return copy;
}

/*
 * after -= before, count by count.
 */
static void
subtract_waits(test_shm_mq_wait_counts *after,
			   const test_shm_mq_wait_counts *before, int nprocesses)
{
	uint64	   *a = (uint64 *) after;
	const uint64 *b = (const uint64 *) before;
	int			i;

	for (i = 0; i < nprocesses * (int) TEST_SHM_MQ_WAIT_COUNTS; i++)
		a[i] -= b[i];
}

/*
 * One of the wait counts (test_shm_mq_wait_counts' count-th field) of every
 * process, as an int8[], the leader first.
 */
static Datum
wait_count_array(const bench_result *result, int count)
{
	Datum	   *elements = palloc(sizeof(Datum) * result->nprocesses);
	int			process;

	for (process = 0; process < result->nprocesses; process++)
		elements[process] =
			Int64GetDatum((int64) ((const uint64 *) &result->waits[process])[count]);
	return PointerGetDatum(construct_array(elements, result->nprocesses,
										   INT8OID, sizeof(int64),
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}
