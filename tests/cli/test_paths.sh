#!/usr/bin/env bash
# Output paths: folders made on demand (image.save's mkdir param), and a save that would
# replace an input or a second save to the same file refused before any pixel moves.
set -u
cd "$(dirname "$0")/../.."
. tests/cli/checks.bash
TA=$(realpath "$T") # the program from any directory

check "a missing output folder is made" \
    bash -c "$T run graphs/blur.yaml -q --set out.path=$tmp/a/b/c/o.png && test -s $tmp/a/b/c/o.png"
check "with mkdir: false a missing folder exits 1" \
    test "$(code $T run graphs/blur.yaml -q --set out.path=$tmp/no/o.png --set out.mkdir=false)" = 1
check "... naming the folder and the param" \
    bash -c "$T run graphs/blur.yaml -q --set out.path=$tmp/no/o.png --set out.mkdir=false 2>&1 | grep -q \"directory '$tmp/no' does not exist (mkdir: true makes it)\""
check "... and makes nothing" bash -c "! test -e $tmp/no"
echo x >$tmp/file
check "a folder that is a file exits 1" \
    test "$(code $T run graphs/blur.yaml -q --set out.path=$tmp/file/o.png)" = 1

cp graphs/images/sample.png $tmp/in.png
cp $tmp/in.png $tmp/in-copy.png
check "an output replacing the input exits 2" \
    test "$(code $T run graphs/blur.yaml --set src.path=$tmp/in.png --set out.path=$tmp/in.png)" = 2
check "... even spelt another way" \
    test "$(code $T run graphs/blur.yaml --set src.path=$tmp/in.png --set out.path=$tmp/a/../in.png)" = 2
check "... saying which node reads it" \
    bash -c "$T run graphs/blur.yaml --set src.path=$tmp/in.png --set out.path=$tmp/in.png 2>&1 | grep -q \"which node 'src' reads\""
check "... and the input is untouched" cmp -s $tmp/in.png $tmp/in-copy.png
ln -s $tmp/in.png $tmp/link.png
check "an output replacing the input through a link exits 2" \
    test "$(code $T run graphs/blur.yaml --set src.path=$tmp/in.png --set out.path=$tmp/link.png)" = 2
cat >$tmp/two.yaml <<YAML
version: 1
nodes:
  src: { type: image.load, params: { path: $PWD/graphs/images/small.png } }
  a: { type: image.save, inputs: { image: src.image }, params: { path: $tmp/x.png } }
  b: { type: image.save, inputs: { image: src.image }, params: { path: $tmp/sub/../x.png } }
YAML
mkdir -p $tmp/sub
check "two saves to one file exit 2" test "$(code $T run $tmp/two.yaml)" = 2
check "... with the second save's position" \
    bash -c "$T validate $tmp/two.yaml 2>&1 | grep -q \"two.yaml:5:.*node 'b': writes '$tmp/sub/../x.png', the same file as node 'a'\""
check "... and nothing is written" bash -c "! test -e $tmp/x.png"

# Links are written through, atomically beside the file they name
mkdir -p $tmp/real
cp graphs/images/small.png $tmp/real/t.png
ln -s real/t.png $tmp/outlink.png
ln -s real/new.png $tmp/dangling.png
check "an output that is a link writes its target" \
    bash -c "$T run graphs/blur.yaml -q --set out.path=$tmp/outlink.png && test -L $tmp/outlink.png && ! cmp -s $tmp/real/t.png graphs/images/small.png"
check "... which is the blurred image" \
    bash -c "$T run graphs/blur.yaml -q --set out.path=$tmp/direct.png && cmp -s $tmp/direct.png $tmp/real/t.png"
check "a dangling link makes the file it names" \
    bash -c "$T run graphs/blur.yaml -q --set out.path=$tmp/dangling.png && test -L $tmp/dangling.png && test -s $tmp/real/new.png"
check "... leaving no temporary file" bash -c "test -z \"\$(ls -A $tmp/real | grep -v '^t.png\$' | grep -v '^new.png\$')\""

# --no-clobber
check "--no-clobber refuses an existing output with exit 2" \
    test "$(code $T run graphs/blur.yaml --set out.path=$tmp/direct.png --no-clobber)" = 2
check "... naming it" \
    bash -c "$T run graphs/blur.yaml --set out.path=$tmp/direct.png --no-clobber 2>&1 | grep -q \"output '$tmp/direct.png' exists (--no-clobber)\""
check "... and writes a new one" \
    bash -c "$T run graphs/blur.yaml -q --set out.path=$tmp/fresh.png --no-clobber && test -s $tmp/fresh.png"
mkdir -p $tmp/bin $tmp/bout
cp graphs/images/small.png $tmp/bin/a.png
cp graphs/images/small.png $tmp/bout/a.png
check "--no-clobber in a batch refuses before any work" \
    test "$(code $T run graphs/blur.yaml --batch $tmp/bin --output-dir $tmp/bout --no-clobber)" = 2

# - : standard input and output
$T run graphs/blur.yaml -q --set out.path=$tmp/ref-blur.png
check "- as the load path reads standard input" \
    bash -c "$T run graphs/blur.yaml -q --set src.path=- --set out.path=$tmp/from-stdin.png <graphs/images/sample.png && cmp -s $tmp/from-stdin.png $tmp/ref-blur.png"
check "- reads a pipe (header and pixels from one read)" \
    bash -c "cat graphs/images/sample.png | $T run graphs/blur.yaml -q --set src.path=- --set out.path=$tmp/from-pipe.png && cmp -s $tmp/from-pipe.png $tmp/ref-blur.png"
check "- as the save path writes standard output" \
    bash -c "$T run graphs/blur.yaml -q --set out.format=png --set out.path=- >$tmp/stdout.png && cmp -s $tmp/stdout.png $tmp/ref-blur.png"
check "... and needs the format param" \
    bash -c "$T run graphs/blur.yaml -q --set out.path=- 2>&1 >/dev/null | grep -q \"cannot tell the format of '-'\""
check "an empty standard input is a clear error" \
    bash -c "$T run graphs/blur.yaml -q --set src.path=- --set out.path=$tmp/x.png </dev/null 2>&1 | grep -q '<stdin>: no data'"
check "run - reads the graph from standard input (its paths relative to the current directory)" \
    bash -c "cd graphs && $TA run - -q --set out.path=$tmp/graph-stdin.png <blur.yaml && cmp -s $tmp/graph-stdin.png $tmp/ref-blur.png"
cat >$tmp/sub/rel.yaml <<YAML
version: 1
nodes:
  src: { type: image.load, params: { path: ../real/t.png } }
  out: { type: image.save, inputs: { image: src.image }, params: { path: ../rel-out.png } }
YAML
check "paths in a graph file resolve against the file's folder, from any directory" \
    bash -c "cd / && $TA run $tmp/sub/rel.yaml -q && test -s $tmp/rel-out.png"
check "paths given with --set resolve against the current directory" \
    bash -c "cd $tmp && $TA run sub/rel.yaml -q --set out.path=cwd-out.png && test -s $tmp/cwd-out.png"
sed 's|real/t.png|real/none.png|' $tmp/sub/rel.yaml >$tmp/sub/rel2.yaml
check "a missing file's message shows the path as resolved" \
    bash -c "$T run $tmp/sub/rel2.yaml 2>&1 | grep -q '$tmp/real/none.png: cannot open'"

cli_done paths
