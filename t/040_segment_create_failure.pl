
# 040_segment_create_failure.pl
#
# Proves that a call whose segment cannot be created fails at once with
# PostgreSQL's own dynamic shared memory error, starts no worker, leaves no
# segment behind, and that the next call works.
#
# The segment is made larger than the system can give:
#  - posix (and posix_min, which falls back to posix for a segment this
#    large): larger than /dev/shm's total size, which tmpfs refuses before
#    allocating anything ("could not resize shared memory segment ... No
#    space left on device");
#  - sysv: larger than kernel.shmmax, or kernel.shmall, or, when overcommit
#    is not "always", than RAM and swap together, all of which shmget()
#    refuses at once; if no such limit applies the test is skipped.
#  - mmap: skipped; the segment is a file that PostgreSQL fills with zeros,
#    which would fill the disk.

use strict;
use warnings FATAL => 'all';

use FindBin;
use lib $FindBin::RealBin;

use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use TestShmMq;

# Larger limits than this are as good as none.
my $no_limit = 2**60;

# Read the first number in a file, or undef.
sub read_number
{
	my ($path) = @_;

	open my $fh, '<', $path or return undef;
	my $line = <$fh>;
	close $fh;
	return (defined $line && $line =~ /(\d+)/) ? $1 : undef;
}

# A value from /proc/meminfo, in bytes, or 0.
sub meminfo_bytes
{
	my ($field) = @_;

	open my $fh, '<', '/proc/meminfo' or return 0;
	while (my $line = <$fh>)
	{
		return $1 * 1024 if $line =~ /^\Q$field\E:\s+(\d+) kB/;
	}
	return 0;
}

# The segment size to ask for and the error to expect, or a reason to skip.
sub oversized_segment
{
	my $type = dsm_type();

	if ($type eq 'mmap')
	{
		return (undef, undef,
			'an oversized mmap segment is a file PostgreSQL fills with zeros until the disk is full'
		);
	}

	if ($type eq 'posix')
	{
		my ($stdout, $stderr);

		IPC::Run::run([ 'df', '--output=size', '-B1', '/dev/shm' ],
			'>', \$stdout, '2>', \$stderr)
		  or return (undef, undef, "df /dev/shm failed: $stderr");
		my ($size) = $stdout =~ /(\d+)\s*$/;
		return (undef, undef, '/dev/shm has no size limit')
		  if !$size || $size >= $no_limit;
		note "/dev/shm is $size bytes";
		return (
			$size + 1,
			qr/^could not resize shared memory segment "\/PostgreSQL\.\d+" to \d+ bytes: No space left on device$/
		);
	}

	# sysv
	my $shmmax     = read_number('/proc/sys/kernel/shmmax');
	my $shmall     = read_number('/proc/sys/kernel/shmall');
	my $overcommit = read_number('/proc/sys/vm/overcommit_memory');
	my $memory     = meminfo_bytes('MemTotal') + meminfo_bytes('SwapTotal');

	note "kernel.shmmax $shmmax, kernel.shmall $shmall pages, "
	  . "vm.overcommit_memory $overcommit, RAM and swap $memory bytes";
	return ($shmmax + 1,
		qr/^could not get shared memory segment: Invalid argument$/)
	  if defined $shmmax && $shmmax < $no_limit;
	return ($shmall * 4096 * 2,
		qr/^could not get shared memory segment: No space left on device$/)
	  if defined $shmall && $shmall * 4096 < $no_limit;
	return (2 * $memory,
		qr/^could not get shared memory segment: Cannot allocate memory$/)
	  if defined $overcommit && $overcommit != 1 && $memory > 0;
	return (undef, undef,
		'no sysv limit (shmmax, shmall, overcommit) refuses a segment at once'
	);
}

my ($segment_size, $expected_message, $skip_reason) = oversized_segment();
plan skip_all => $skip_reason if defined $skip_reason;

my $node            = new_node('segment_create_failure');
my $segments_before = dsm_segments($node);
my $session         = TestShmMq::Session->new($node);

# One worker: two data queues, each at least half the wanted segment.
my $queue_size = int($segment_size / 2) + 1;
my $estimate =
  $session->query("SELECT test_shm_mq_estimate($queue_size, 1)")->{stdout};
cmp_ok($estimate, '>=', $segment_size,
	"a ring with queues of $queue_size bytes needs at least $segment_size bytes"
);

foreach my $function ('test_shm_mq', 'test_shm_mq_pipelined')
{
	my $label  = "$function with a segment of $estimate bytes";
	my $result = $session->query("SELECT $function($queue_size, 'x', 1, 1)");
	my $error  = parse_error($result->{stderr}) // {};

	ok($result->{finished}, "$label: the call ended");
	is($error->{severity}, 'ERROR', "$label: ERROR");
	like($error->{message} // '',
		$expected_message, "$label: PostgreSQL's own error");
	check_time_to_error($label, $result->{sent_at}, $result->{error_at});
	check_no_leftovers($node, $segments_before, $label);
}

is($session->query("SELECT test_shm_mq(1024, 'x', 10, 2)")->{stderr},
	'', 'a call after the failures works');

$session->close;
check_no_leftovers($node, $segments_before, 'end');
$node->stop;
done_testing();
