/*-------------------------------------------------------------------------
 *
 * layout.c
 *		SQL functions that show how a ring's segment is sized and laid out:
 *		test_shm_mq_estimate() and test_shm_mq_layout().
 *
 * The layout is read back from a real segment, built by the same code as a
 * round trip's but with no workers started.  shm_toc keeps its entry array at
 * the start of the segment, growing upwards, and hands out chunks from the
 * end, growing downwards; whatever lies between is free, and shown only if
 * there is any.  Each chunk's size
 * is the distance to the next chunk above it, so the rows tile the segment
 * and their sizes add up to the estimate.
 *
 * IDENTIFICATION
 *		src/layout.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "ring.h"

PG_FUNCTION_INFO_V1(test_shm_mq_estimate);
PG_FUNCTION_INFO_V1(test_shm_mq_layout);

#define LAYOUT_COLUMNS	4

/* One row of test_shm_mq_layout(). */
typedef struct layout_row
{
	bool		has_key;		/* false for the table of contents and free
								 * space, which have no key */
	uint64		key;
	char	   *role;
	Size		offset;			/* from the start of the segment */
	Size		size;
} layout_row;

/* All the rows, in the order they are returned. */
typedef struct layout
{
	int			nrows;
	layout_row *rows;
} layout;

static layout *read_layout(int64 queue_size, int nworkers);
static char *describe_key(uint64 key, int nworkers);
static int	compare_offsets(const void *a, const void *b);

/*
 * test_shm_mq_estimate(queue_size int8, num_workers int4) returns int8
 */
Datum
test_shm_mq_estimate(PG_FUNCTION_ARGS)
{
	int64		queue_size = PG_GETARG_INT64(0);
	int32		nworkers = PG_GETARG_INT32(1);

	test_shm_mq_check_worker_count(nworkers, 0);

	PG_RETURN_INT64((int64) test_shm_mq_segment_size(queue_size, nworkers));
}

/*
 * test_shm_mq_layout(queue_size int8, num_workers int4)
 *		returns table (toc_key int8, role text, offset_bytes int8,
 *					   size_bytes int8)
 */
Datum
test_shm_mq_layout(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	layout	   *segment_layout;
	layout_row *row;
	Datum		values[LAYOUT_COLUMNS];
	bool		nulls[LAYOUT_COLUMNS];

	if (SRF_IS_FIRSTCALL())
	{
		int64		queue_size = PG_GETARG_INT64(0);
		int32		nworkers = PG_GETARG_INT32(1);
		MemoryContext oldcontext;
		TupleDesc	tupdesc;

		funcctx = SRF_FIRSTCALL_INIT();
		oldcontext = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);

		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		funcctx->tuple_desc = BlessTupleDesc(tupdesc);
		funcctx->user_fctx = read_layout(queue_size, nworkers);

		MemoryContextSwitchTo(oldcontext);
	}

	funcctx = SRF_PERCALL_SETUP();
	segment_layout = (layout *) funcctx->user_fctx;
	if (funcctx->call_cntr >= (uint64) segment_layout->nrows)
		SRF_RETURN_DONE(funcctx);

	row = &segment_layout->rows[funcctx->call_cntr];
	memset(nulls, 0, sizeof(nulls));
	values[0] = Int64GetDatum((int64) row->key);
	nulls[0] = !row->has_key;
	values[1] = CStringGetTextDatum(row->role);
	values[2] = Int64GetDatum((int64) row->offset);
	values[3] = Int64GetDatum((int64) row->size);

	SRF_RETURN_NEXT(funcctx,
					HeapTupleGetDatum(heap_form_tuple(funcctx->tuple_desc,
													  values, nulls)));
}

/*
 * Build a ring's segment, read every table-of-contents entry back, and
 * detach.  The rows are allocated in the current memory context, ordered by
 * offset.
 */
static layout *
read_layout(int64 queue_size, int nworkers)
{
	test_shm_mq_ring *ring;
	layout	   *result;
	char	   *base;
	int			nkeys;
	int			i;
	Size		chunks_start;
	Size		free_bytes;
	int			reserved;

	test_shm_mq_check_worker_count(nworkers, 0);
	ring = test_shm_mq_ring_create(queue_size, nworkers,
								   TEST_SHM_MQ_WAIT_BLOCK);
	base = (char *) dsm_segment_address(ring->segment);

	/* Every key, then the table of contents and any free space. */
	nkeys = TEST_SHM_MQ_KEYS(nworkers);
	result = palloc(sizeof(layout));
	result->rows = palloc0(sizeof(layout_row) * (nkeys + 2));
	result->nrows = 0;

	for (i = 0; i < nkeys; i++)
	{
		layout_row *row = &result->rows[result->nrows++];

		row->has_key = true;
		row->key = (uint64) i;
		row->role = describe_key(row->key, nworkers);
		row->offset = (char *) shm_toc_lookup(ring->toc, row->key, false) - base;
	}

	/* Chunks sit back to back up to the end of the segment. */
	qsort(result->rows, result->nrows, sizeof(layout_row), compare_offsets);
	for (i = 0; i < result->nrows; i++)
	{
		Size		end = i + 1 < result->nrows ?
			result->rows[i + 1].offset : ring->segment_size;

		result->rows[i].size = end - result->rows[i].offset;
	}

	/*
	 * What lies below the lowest chunk is the table of contents, then any
	 * free space the estimate left, which for our estimate is none.
	 */
	chunks_start = result->rows[0].offset;
	free_bytes = shm_toc_freespace(ring->toc);
	reserved = free_bytes > 0 ? 2 : 1;
	memmove(&result->rows[reserved], &result->rows[0],
			sizeof(layout_row) * result->nrows);
	result->nrows += reserved;
	result->rows[0].has_key = false;
	result->rows[0].role = pstrdup("table of contents");
	result->rows[0].offset = 0;
	result->rows[0].size = chunks_start - free_bytes;
	if (free_bytes > 0)
	{
		result->rows[1].has_key = false;
		result->rows[1].role = pstrdup("free");
		result->rows[1].offset = chunks_start - free_bytes;
		result->rows[1].size = free_bytes;
	}

	test_shm_mq_ring_release(ring);
	return result;
}

/*
 * What the chunk at a table-of-contents key holds, in words.
 */
static char *
describe_key(uint64 key, int nworkers)
{
	int			queue;

	if (key == TEST_SHM_MQ_KEY_HEADER)
		return pstrdup("header");

	if (key <= TEST_SHM_MQ_KEY_DATA_QUEUE(nworkers))
	{
		queue = (int) (key - TEST_SHM_MQ_KEY_DATA_QUEUE(0));
		if (nworkers == 0)
			return pstrdup("data queue: leader -> leader");
		if (queue == 0)
			return pstrdup("data queue: leader -> worker 1");
		if (queue == nworkers)
			return psprintf("data queue: worker %d -> leader", nworkers);
		return psprintf("data queue: worker %d -> worker %d", queue, queue + 1);
	}

	if (key == TEST_SHM_MQ_KEY_AREA(nworkers))
		return pstrdup("dynamic shared memory area");
	if (key == TEST_SHM_MQ_KEY_WAIT_SLOTS(nworkers))
		return pstrdup("wait slots");

	return psprintf("error queue: worker %d -> leader",
					(int) (key - TEST_SHM_MQ_KEY_ERROR_QUEUE(nworkers, 0)));
}

/*
 * qsort comparator: layout rows by offset.
 */
static int
compare_offsets(const void *a, const void *b)
{
	const layout_row *row_a = (const layout_row *) a;
	const layout_row *row_b = (const layout_row *) b;

	if (row_a->offset < row_b->offset)
		return -1;
	if (row_a->offset > row_b->offset)
		return 1;
	return 0;
}
