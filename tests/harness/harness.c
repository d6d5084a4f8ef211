/* Test harness for darknet_py's own tests: runs a prebuilt Darknet (pjreddie or, with
 * -DALEXEYAB, AlexeyAB's libdarknet) on raw float32 files and writes raw float32 results.
 * Written for darknet_py (not Darknet code); it only calls Darknet's public functions.
 *
 *   harness resize CFG WEIGHTS INPUT.f32 W H OUTDIR
 *       load_network, set_batch_network(1), resize_network(W,H), one forward;
 *       OUTDIR/layer_NNN.f32 = l.output, OUTDIR/shapes.txt = "i out_c out_h out_w outputs h w"
 *   harness train CFG WEIGHTS X.f32 ROWS Y.f32 YCOLS K OUTDIR
 *       train_network K times on d (ROWS images); OUTDIR/log.txt = "k loss rate seen",
 *       OUTDIR/weights_iterK.weights after each call, and after call 1 for each layer
 *       with a cost: iter1_output_NNN.f32, iter1_delta_NNN.f32, costs in iter1_cost.txt;
 *       AlexeyAB with [net] ema_alpha: OUTDIR/weights_iterK_ema.weights after each call
 *       once the EMA is initialised (save_weights_upto(..., save_ema=1), as train_detector
 *       writes backup/NAME_ema.weights)
 *   harness rate CFG SEEN...
 *       get_current_rate for each *seen, one "%.9g" per line
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "darknet.h"

#ifdef ALEXEYAB
int resize_network(network *net, int w, int h);
float get_current_rate(network net);
float train_network(network net, data d);
void save_weights(network net, char *filename);
network parse_network_cfg(char *filename);
void save_weights_upto(network net, char *filename, int cutoff, int save_ema);
int is_ema_initialized(network net);
#define SAVE(n, p) save_weights(*(n), (p))
#define SAVE_EMA(nt, p) do { if ((nt)->ema_alpha && is_ema_initialized(*(nt))) \
    save_weights_upto(*(nt), (p), (nt)->n, 1); } while (0)
#define PARSE(p) ({ network *_n = calloc(1, sizeof(network)); *_n = parse_network_cfg(p); _n; })
#define NET(n) (*(n))
#define PREDICT(n, x) network_predict_ptr((n), (x))
#define TRAIN(n, d) train_network(*(n), (d))
#define RATE(n) get_current_rate(*(n))
#else
#define NET(n) (n)
#define PREDICT(n, x) network_predict((n), (x))
#define TRAIN(n, d) train_network((n), (d))
#define RATE(n) get_current_rate((n))
#define SAVE(n, p) save_weights((n), (p))
#define SAVE_EMA(n, p) do { } while (0)
#define PARSE(p) parse_network_cfg(p)
#endif

static float *read_f32(const char *path, size_t n)
{
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); exit(2); }
    float *buf = calloc(n, sizeof(float));
    if (fread(buf, sizeof(float), n, f) != n) { fprintf(stderr, "short read %s\n", path); exit(2); }
    fclose(f);
    return buf;
}

static void write_f32(const char *dir, const char *name, int index, const float *x, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s_%03d.f32", dir, name, index);
    FILE *f = fopen(path, "wb");
    if (!f) { fprintf(stderr, "cannot write %s\n", path); exit(2); }
    fwrite(x, sizeof(float), n, f);
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: see harness.c\n"); return 2; }
    if (!strcmp(argv[1], "resize") && argc == 8) {
        network *net = load_network(argv[2], argv[3], 0);
        set_batch_network(net, 1);
        int w = atoi(argv[5]), h = atoi(argv[6]);
        resize_network(net, w, h);
        float *x = read_f32(argv[4], (size_t)net->c * h * w);
        PREDICT(net, x);
        char path[4096];
        snprintf(path, sizeof path, "%s/shapes.txt", argv[7]);
        FILE *s = fopen(path, "w");
        for (int i = 0; i < net->n; ++i) {
            layer l = net->layers[i];
            fprintf(s, "%d %d %d %d %d %d %d\n", i, l.out_c, l.out_h, l.out_w, l.outputs, l.h, l.w);
            write_f32(argv[7], "layer", i, l.output, (size_t)l.outputs * l.batch);
        }
        fclose(s);
        return 0;
    }
    if (!strcmp(argv[1], "train") && argc == 10) {
        network *net = load_network(argv[2], argv[3], 0);
        int rows = atoi(argv[5]), ycols = atoi(argv[7]), K = atoi(argv[8]);
        const char *out = argv[9];
        int xcols = net->h * net->w * net->c;
        float *X = read_f32(argv[4], (size_t)rows * xcols);
        float *Y = read_f32(argv[6], (size_t)rows * ycols);
        data d = {0};
        d.X.rows = rows; d.X.cols = xcols; d.X.vals = calloc(rows, sizeof(float *));
        d.y.rows = rows; d.y.cols = ycols; d.y.vals = calloc(rows, sizeof(float *));
        for (int i = 0; i < rows; ++i) {
            d.X.vals[i] = X + (size_t)i * xcols;
            d.y.vals[i] = Y + (size_t)i * ycols;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/log.txt", out);
        FILE *log = fopen(path, "w");
        for (int k = 1; k <= K; ++k) {
            float loss = TRAIN(net, d);
            fprintf(log, "%d %.9g %.9g %lu\n", k, loss, RATE(net), (unsigned long)*net->seen);
            if (k == 1) {
                snprintf(path, sizeof path, "%s/iter1_cost.txt", out);
                FILE *c = fopen(path, "w");
                for (int i = 0; i < net->n; ++i) {
                    layer l = net->layers[i];
                    if (!l.cost) continue;
                    fprintf(c, "%d %.9g\n", i, l.cost[0]);
                    write_f32(out, "iter1_output", i, l.output, (size_t)l.outputs * l.batch);
                    if (l.delta) write_f32(out, "iter1_delta", i, l.delta, (size_t)l.outputs * l.batch);
                }
                fclose(c);
            }
            if (getenv("HARNESS_DUMP_DELTAS") && atoi(getenv("HARNESS_DUMP_DELTAS")) == k) {
                {
                    for (int i = 0; i < net->n; ++i) {
                        layer l = net->layers[i];
                        if (l.delta) write_f32(out, "iter1_layer_delta", i, l.delta, (size_t)l.outputs * l.batch);
                        write_f32(out, "iter1_layer_output", i, l.output, (size_t)l.outputs * l.batch);
                    }
                }
            }
            snprintf(path, sizeof path, "%s/weights_iter%d.weights", out, k);
            SAVE(net, path);
            snprintf(path, sizeof path, "%s/weights_iter%d_ema.weights", out, k);
            SAVE_EMA(net, path);
        }
        fclose(log);
        return 0;
    }
    if (!strcmp(argv[1], "rate")) {
        network *net = PARSE(argv[2]);
        for (int i = 3; i < argc; ++i) {
            *net->seen = strtoull(argv[i], 0, 10);
            printf("%.9g\n", RATE(net));
        }
        return 0;
    }
    fprintf(stderr, "bad arguments\n");
    return 2;
}
