
# 060_load.pl
#
# Proves that the extension holds up under concurrent load with more workers
# wanted than there are slots: pgbench runs 8 sessions for some seconds on a
# node with max_worker_processes = 8 (7 free: the logical replication
# launcher holds one), each session calling test_shm_mq() over and over with 2
# or 3 workers, so up to 24 workers are wanted at once.
#
#  - With test_shm_mq_ext.worker_slot_wait = 10 s, no call fails.
#  - Without it, calls do fail for want of a slot (the load does exceed the
#    slots), but with no other error than the slot error; a PL/pgSQL wrapper
#    counts those and re-raises anything else, which pgbench would report.
#
# Afterwards no worker process and no segment of ours is left.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use TestShmMq;

my $clients      = 8;
my $seconds      = 10;
my $slot_wait_ms = 10000;

my $node            = new_node('load', max_worker_processes => 8);
my $segments_before = dsm_segments($node);

$node->safe_psql(
	'postgres', q{
	CREATE TABLE outcomes (slot_error bool NOT NULL);

	-- One call; a slot error is counted, any other error is re-raised.
	CREATE FUNCTION ring_or_slot_error(nworkers int) RETURNS void
	LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM test_shm_mq(1024, repeat('x', 100), 10, nworkers);
		INSERT INTO outcomes VALUES (false);
	EXCEPTION WHEN insufficient_resources THEN
		IF SQLERRM NOT LIKE 'no free background worker slot for worker % of %' THEN
			RAISE;
		END IF;
		INSERT INTO outcomes VALUES (true);
	END
	$$;
});

# Run pgbench with a script; returns its exit status and output.
sub run_pgbench
{
	my ($name, $script) = @_;
	my $file = "${PostgreSQL::Test::Utils::tmp_check}/060_load_$name.sql";
	my ($stdout, $stderr);

	open my $fh, '>', $file or die "could not write $file: $!";
	print $fh $script;
	close $fh;

	my @command = (
		$node->installed_command('pgbench'),
		'--no-vacuum',
		'--client' => $clients,
		'--jobs'   => 2,
		'--time'   => $seconds,
		'--file'   => $file,
		'--host'   => $node->host,
		'--port'   => $node->port,
		'postgres');
	note "running: @command";
	my $started_at = now();
	IPC::Run::run(\@command, '>', \$stdout, '2>', \$stderr,
		IPC::Run::timeout($seconds + 60));
	my $status = $? >> 8;
	note sprintf(
		"pgbench %s took %.1f s, exit status %d\nstdout:\n%s\nstderr:\n%s",
		$name,   now() - $started_at,
		$status, $stdout, $stderr);
	return ($status, $stdout, $stderr);
}

# With a slot wait: every call succeeds.
my ($status, $stdout, $stderr) = run_pgbench(
	'slot_wait', qq{
SET test_shm_mq_ext.worker_slot_wait = $slot_wait_ms;
\\set nworkers random(2, 3)
SELECT test_shm_mq(1024, repeat('x', 100), 10, :nworkers);
});
is($status, 0, "with worker_slot_wait: pgbench succeeded");
unlike($stderr, qr/aborted|ERROR/, "with worker_slot_wait: no client failed");
like(
	$stdout,
	qr/^number of failed transactions: 0 /m,
	"with worker_slot_wait: no failed transaction");
my ($calls) = $stdout =~ /^number of transactions actually processed: (\d+)/m;
cmp_ok($calls // 0, '>', 0, "with worker_slot_wait: calls were made");
note "with worker_slot_wait: " . ($calls // 0) . " calls in $seconds s";
check_no_leftovers($node, $segments_before, 'load with worker_slot_wait');

# Without: the slot error and nothing else.
($status, $stdout, $stderr) = run_pgbench(
	'no_slot_wait', q{
\set nworkers random(2, 3)
SELECT ring_or_slot_error(:nworkers);
});
is($status, 0, "without worker_slot_wait: pgbench succeeded");
unlike($stderr, qr/aborted|ERROR/,
	"without worker_slot_wait: no error other than the slot error");
like(
	$stdout,
	qr/^number of failed transactions: 0 /m,
	"without worker_slot_wait: no failed transaction");
my ($succeeded, $slot_errors) = split /\|/,
  $node->safe_psql('postgres',
	'SELECT count(*) FILTER (WHERE NOT slot_error), count(*) FILTER (WHERE slot_error) FROM outcomes'
  );
note
  "without worker_slot_wait: $succeeded calls succeeded, $slot_errors failed for want of a slot";
cmp_ok($succeeded, '>', 0, "without worker_slot_wait: calls succeeded");
cmp_ok($slot_errors, '>', 0,
	"without worker_slot_wait: the load did exceed the slots");
check_no_leftovers($node, $segments_before, 'load without worker_slot_wait');

$node->stop;
done_testing();
