/* darknet_py's harness: runs a real Darknet and dumps what it computes as .npy files.
 *
 * Written for darknet_py (no Darknet code in here): it only calls Darknet's own
 * functions, through the fork's include/darknet.h, and is compiled by
 * darknet_py/darknet/harness.py with -DDPY_ALEXEYAB for AlexeyAB's fork.
 *
 *   dpy_harness info    CFG OUT
 *   dpy_harness forward CFG OUT (-w WEIGHTS | -s SEED) -i INPUT.f32
 *   dpy_harness detect  CFG OUT (-w WEIGHTS | -s SEED) -m IMAGE -n NAMES [-t THRESH]... [-H HIER] [-N NMS] [-l]
 *   dpy_harness train   CFG OUT (-w WEIGHTS | -s SEED) -i X.f32 -y Y.f32 -r ROWS -k K [-b NB] [-e E] [-D]
 *   dpy_harness sequence CFG OUT (-w WEIGHTS | -s SEED) -i X.f32 -k CALLS
 *   dpy_harness decode  IMAGE OUT.npy
 *
 * INPUT/X/Y are raw little-endian float32. OUT receives layer_NNN.npy & co and
 * harness.txt (one fact per line) from which darknet_py writes case.json.
 * Random init (-s) is the one the reference cases' case.json `init` describes.
 * Darknet always runs its CPU path here (gpu_index = -1), also in a GPU build.
 */
#include "darknet.h"

#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef DPY_ALEXEYAB
/* exported by AlexeyAB's libdarknet but not declared in its darknet.h */
network parse_network_cfg(char *filename);
network parse_network_cfg_custom(char *filename, int batch, int time_steps);
void save_weights(network net, char *filename);
void load_weights(network *net, char *filename);
void forward_network(network net, network_state state);
float train_network(network net, data d);
float get_current_rate(network net);
char *get_layer_string(LAYER_TYPE a);
float rand_uniform(float min, float max);
image load_image(char *filename, int w, int h, int c);
image copy_image(image p);
void draw_detections_v3(image im, detection *dets, int num, float thresh, char **names,
                        image **alphabet, int classes, int ext_output);
#else
char *get_layer_string(LAYER_TYPE a);
#endif

static const char *out_dir;
static FILE *facts;

static void die(const char *msg, const char *what)
{
    fprintf(stderr, "dpy_harness: %s%s%s\n", msg, what ? ": " : "", what ? what : "");
    exit(3);
}

static char *path_in(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", out_dir, name);
    return buf;
}

/* .npy version 1.0: magic, header length, a dict padded with spaces to a multiple of 64, raw data */
static void write_npy(const char *name, const char *descr, const int *shape, int ndim,
                      const void *data, size_t itemsize)
{
    char dict[256], dims[160] = "";
    size_t count = 1;
    int i;
    for (i = 0; i < ndim; ++i) {
        char one[24];
        snprintf(one, sizeof one, "%s%d", i ? ", " : "", shape[i]);
        strcat(dims, one);
        count *= (size_t)shape[i];
    }
    if (ndim == 1) strcat(dims, ",");
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                     descr, dims);
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    unsigned short hlen = (unsigned short)(n + pad + 1);
    FILE *f = fopen(path_in(name), "wb");
    if (!f) die("cannot write", path_in(name));
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    unsigned char le[2] = {(unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
    fwrite(le, 1, 2, f);
    fwrite(dict, 1, n, f);
    for (i = 0; i < pad; ++i) fputc(' ', f);
    fputc('\n', f);
    if (count && fwrite(data, itemsize, count, f) != count) die("short write", name);
    if (fclose(f)) die("cannot write", name);
}

static void write_f32(const char *name, const int *shape, int ndim, const float *data)
{
    write_npy(name, "<f4", shape, ndim, data, 4);
}

static float *read_f32(const char *path, size_t count)
{
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot read", path);
    float *x = calloc(count ? count : 1, sizeof(float));
    if (fread(x, sizeof(float), count, f) != count) die("input file too short for the network", path);
    if (fgetc(f) != EOF) die("input file longer than the network's input", path);
    fclose(f);
    return x;
}

/* -- the two forks' calls, one shape ------------------------------------------------------ */
static network *net_parse(char *cfg)
{
#ifdef DPY_ALEXEYAB
    network *net = calloc(1, sizeof(network));
    *net = parse_network_cfg(cfg);
    return net;
#else
    return parse_network_cfg(cfg);
#endif
}

static void net_save(network *net, const char *name)
{
#ifdef DPY_ALEXEYAB
    save_weights(*net, path_in(name));
#else
    save_weights(net, path_in(name));
#endif
}

static void net_predict(network *net, float *x)
{
#ifdef DPY_ALEXEYAB
    network_predict(*net, x);
#else
    network_predict(net, x);
#endif
}

static void net_forward_train(network *net, float *x, float *truth)
{
#ifdef DPY_ALEXEYAB
    network_state state = {0};
    state.net = *net;
    state.input = x;
    state.truth = truth;
    state.train = 1;
    state.workspace = net->workspace;
    forward_network(*net, state);
#else
    net->input = x;
    net->truth = truth;
    net->train = 1;
    forward_network(net);
#endif
}

static float net_rate(network *net)
{
#ifdef DPY_ALEXEYAB
    return get_current_rate(*net);
#else
    return get_current_rate(net);
#endif
}

static float net_train(network *net, data d)
{
#ifdef DPY_ALEXEYAB
    return train_network(*net, d);
#else
    return train_network(net, d);
#endif
}

/* floats of truth per image: pjreddie keeps it in net->truths; AlexeyAB's layers index the
   truth with their own l.truths (max_boxes*6) and leave net.truths 0; without such a layer
   (a classifier) its train_network_datum_gpu sizes the truth as the network's output */
static int net_truths(network *net)
{
#ifdef DPY_ALEXEYAB
    int i, t = net->truths;
    for (i = 0; i < net->n; ++i)
        if (net->layers[i].truths > t) t = net->layers[i].truths;
    return t ? t : net->outputs;
#else
    return net->truths;
#endif
}

static const char *layer_name(layer l)
{
#ifdef DPY_ALEXEYAB
    if (l.type == UPSAMPLE) return "upsample"; /* its get_layer_string says "none" (as the reference) */
#endif
    return get_layer_string(l.type);
}

/* -- random init (case.json `init` of the reference cases) -------------------------------- */
static int has_bn_stats(layer l)
{
    return l.rolling_mean && l.rolling_variance && l.mean && l.variance &&
           (l.type == BATCHNORM || l.batch_normalize);
}

/* layers whose scales/biases the init draws: conv (as in the reference cases), BN ones beside */
static int bn_filters(layer l)
{
    if (l.type == CONVOLUTIONAL) return l.n;
    if (l.type == BATCHNORM) return l.out_c;
    if (l.type == CONNECTED && l.batch_normalize) return l.outputs;
    return 0;
}

/* the inner layers of a recurrent layer (their own make_connected/convolutional init drew
   their weights; random_init draws their BN values and biases as a top-level layer's) */
static int inner_layers(layer l, layer **out)
{
    int n = 0;
    if (l.type == RNN || l.type == CRNN) {
        out[n++] = l.input_layer; out[n++] = l.self_layer; out[n++] = l.output_layer;
    }
    if (l.type == GRU) {
#ifdef DPY_ALEXEYAB
        out[n++] = l.input_z_layer; out[n++] = l.input_r_layer; out[n++] = l.input_h_layer;
        out[n++] = l.state_z_layer; out[n++] = l.state_r_layer; out[n++] = l.state_h_layer;
#else
        out[n++] = l.wz; out[n++] = l.wr; out[n++] = l.wh;
        out[n++] = l.uz; out[n++] = l.ur; out[n++] = l.uh;
#endif
    }
    if (l.type == LSTM) {
#ifdef DPY_ALEXEYAB
        out[n++] = l.wf; out[n++] = l.wi; out[n++] = l.wg; out[n++] = l.wo;
        out[n++] = l.uf; out[n++] = l.ui; out[n++] = l.ug; out[n++] = l.uo;
#else
        out[n++] = l.wi; out[n++] = l.wf; out[n++] = l.wo; out[n++] = l.wg;
        out[n++] = l.ui; out[n++] = l.uf; out[n++] = l.uo; out[n++] = l.ug;
#endif
    }
    return n;
}

static int has_recurrent(network *net)
{
    layer *inner[16];
    int i;
    for (i = 0; i < net->n; ++i)
        if (inner_layers(net->layers[i], inner)) return 1;
    return 0;
}

/* nets with recurrent layers: no train-mode forward (pjreddie's make_rnn_layer sizes l.state
   for one step, its training forward writes steps past it); each inner layer's BN scales and
   biases as above, rolling mean U(-.1,.1), rolling variance U(.5,1.5) */
static void random_init_recurrent(network *net, int seed)
{
    int i, j, k, m;
    layer *inner[16];
    srand(seed + 7919);
    for (i = 0; i < net->n; ++i) {
        layer top = net->layers[i];
        layer *one = &net->layers[i];
        int n = inner_layers(top, inner);
        if (!n) { inner[0] = one; n = 1; }
        for (k = 0; k < n; ++k) {
            layer l = *inner[k];
            int filters = bn_filters(l);
            for (j = 0; j < filters; ++j) {
                if ((l.batch_normalize || l.type == BATCHNORM) && l.scales) l.scales[j] = rand_uniform(.5, 1.5);
                if (l.biases) l.biases[j] = rand_uniform(-.2, .2);
            }
            if (!has_bn_stats(l)) continue;
            for (m = 0; m < filters; ++m) {
                l.rolling_mean[m] = rand_uniform(-.1, .1);
                l.rolling_variance[m] = rand_uniform(.5, 1.5);
            }
        }
    }
}

static void random_init(network *net, int seed)
{
    int i, j;
    if (has_recurrent(net)) { random_init_recurrent(net, seed); return; }
#ifdef DPY_ALEXEYAB
    /* make_yolo_layer calls srand(time(0)): redraw every conv weight as make_convolutional_layer does */
    srand(seed);
    for (i = 0; i < net->n; ++i) {
        layer l = net->layers[i];
        if (l.type != CONVOLUTIONAL) continue;
        float scale = sqrt(2. / (l.size * l.size * l.c / l.groups));
        for (j = 0; j < l.nweights; ++j) l.weights[j] = scale * rand_uniform(-1, 1);
    }
#endif
    srand(seed + 7919);
    for (i = 0; i < net->n; ++i) {
        layer l = net->layers[i];
        int filters = bn_filters(l);
        for (j = 0; j < filters; ++j) {
            if ((l.batch_normalize || l.type == BATCHNORM) && l.scales) l.scales[j] = rand_uniform(.5, 1.5);
            if (l.biases) l.biases[j] = rand_uniform(-.2, .2);
        }
    }
    /* one train-mode forward on U(0,1) sets the batch statistics the rolling ones are drawn around */
    size_t n = (size_t)net->inputs * net->batch;
    float *x = calloc(n, sizeof(float));
    float *truth = calloc((size_t)net_truths(net) * net->batch + 1, sizeof(float));
    for (i = 0; i < (int)n; ++i) x[i] = rand_uniform(0, 1);
#ifndef DPY_ALEXEYAB
    float *own_input = net->input, *own_truth = net->truth; /* parse's buffers, train_network's too */
#endif
    net_forward_train(net, x, truth);
    for (i = 0; i < net->n; ++i) {
        layer l = net->layers[i];
        if (!has_bn_stats(l)) continue;
        int filters = bn_filters(l);
        for (j = 0; j < filters; ++j) {
            l.rolling_mean[j] = l.mean[j] + rand_uniform(-.1, .1) * sqrt(l.variance[j]);
            l.rolling_variance[j] = l.variance[j] * rand_uniform(.8, 1.25);
        }
    }
#ifndef DPY_ALEXEYAB
    net->input = own_input;
    net->truth = own_truth;
    net->train = 0;
#endif
    free(x);
    free(truth);
}

/* -- dumping ------------------------------------------------------------------------------ */
static int layer_shape(layer l, int batch, int *shape)
{
    int n = 0;
    if (batch > 0) shape[n++] = batch;
    if (l.out_c * l.out_h * l.out_w == l.outputs && l.outputs > 0) {
        shape[n++] = l.out_c;
        shape[n++] = l.out_h;
        shape[n++] = l.out_w;
    } else {
        shape[n++] = l.outputs;
    }
    return n;
}

static void dump_layers(network *net, const char *prefix, int batch, int write)
{
    int i, shape[4];
    for (i = 0; i < net->n; ++i) {
        layer l = net->layers[i];
        char name[64];
        int dumped = write && l.output != 0 && l.outputs > 0;
        if (dumped) {
            snprintf(name, sizeof name, "%slayer_%03d.npy", prefix, i);
            write_f32(name, shape, layer_shape(l, batch, shape), l.output);
        }
        fprintf(facts, "layer %d %s %d %d %d %d %d %d\n", i, layer_name(l), l.out_c, l.out_h,
                l.out_w, l.outputs, l.classes, dumped);
    }
}

static void net_facts(network *net)
{
    fprintf(facts, "net %d %d %d %d %d %d %d %llu\n", net->w, net->h, net->c, net->batch,
            net->subdivisions, net->inputs, net_truths(net), (unsigned long long)*net->seen);
    fprintf(facts, "params %.9g %.9g %.9g %d %.9g %d %d\n", net->learning_rate, net->momentum,
            net->decay, net->burn_in, net->power, (int)net->policy, net->max_batches);
}

static network *load_or_init(char *cfg, char *weights, int seed, int batch1)
{
    srand(seed);
    network *net = net_parse(cfg);
    if (batch1) set_batch_network(net, 1);
    if (weights) {
        load_weights(net, weights);
    } else {
        random_init(net, seed);
        net_save(net, batch1 ? "weights.weights" : "weights_init.weights");
    }
    return net;
}

/* -- detect: detector test's path, every detection at each threshold before and after NMS -- */
static void dump_dets(detection *dets, int n, int classes, const char *name)
{
    int i, j, shape[2] = {n, 5 + classes};
    float *rows = calloc((size_t)n * (5 + classes) + 1, sizeof(float));
    for (i = 0; i < n; ++i) {
        float *r = rows + (size_t)i * (5 + classes);
        r[0] = dets[i].bbox.x;
        r[1] = dets[i].bbox.y;
        r[2] = dets[i].bbox.w;
        r[3] = dets[i].bbox.h;
        r[4] = dets[i].objectness;
        for (j = 0; j < classes; ++j) r[5 + j] = dets[i].prob[j];
    }
    write_f32(name, shape, 2, rows);
    free(rows);
}

static char **read_names(const char *path, int classes)
{
    char **names = calloc(classes + 1, sizeof(char *));
    FILE *f = fopen(path, "r");
    if (!f) die("cannot read names", path);
    char line[4096];
    int i = 0;
    while (i < classes && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        names[i++] = strdup(line);
    }
    fclose(f);
    for (; i < classes; ++i) names[i] = strdup("?");
    return names;
}

static void detect(network *net, char *image_path, char *names_path, float *thresholds, int nthresh,
                   float hier, float nms, int letter)
{
    int i, j, t, k, shape[3];
#ifdef DPY_ALEXEYAB
    if (net->letter_box) letter = 1;
    fuse_conv_batchnorm(*net);
    calculate_binary_weights(*net);
    image im = load_image(image_path, 0, 0, net->c);
#else
    letter = 1;
    image im = load_image_color(image_path, 0, 0);
#endif
    unsigned char *u8 = malloc((size_t)im.w * im.h * im.c + 1);
    for (i = 0; i < im.w * im.h * im.c; ++i) u8[i] = (unsigned char)(im.data[i] * 255.f + .5f);
    shape[0] = im.c; shape[1] = im.h; shape[2] = im.w;
    write_npy("image_decoded_u8.npy", "|u1", shape, 3, u8, 1);
    free(u8);
    image sized = letter ? letterbox_image(im, net->w, net->h) : resize_image(im, net->w, net->h);
    shape[0] = sized.c; shape[1] = sized.h; shape[2] = sized.w;
    write_f32("input.npy", shape, 3, sized.data);
    net_predict(net, sized.data);
    dump_layers(net, "", 0, 1);
    layer last = net->layers[net->n - 1];
    for (k = 0; k < net->n; ++k)
        if (net->layers[k].type == YOLO || net->layers[k].type == REGION) last = net->layers[k];
    int classes = last.classes;
    char **names = read_names(names_path, classes);
    fprintf(facts, "image %d %d %d letterbox %d\n", im.c, im.h, im.w, letter);
    for (t = 0; t < nthresh; ++t) {
        char name[64];
        int nboxes = 0;
        float th = thresholds[t];
#ifdef DPY_ALEXEYAB
        detection *dets = get_network_boxes(net, im.w, im.h, th, hier, 0, 1, &nboxes, letter);
#else
        detection *dets = get_network_boxes(net, im.w, im.h, th, hier, 0, 1, &nboxes);
#endif
        snprintf(name, sizeof name, "dets_t%g_prenms.npy", th);
        dump_dets(dets, nboxes, classes, name);
        float **before = malloc(sizeof(float *) * (nboxes + 1));
        for (i = 0; i < nboxes; ++i) before[i] = dets[i].prob;
        if (nms > 0) {
#ifdef DPY_ALEXEYAB
            if (last.nms_kind == DEFAULT_NMS) do_nms_sort(dets, nboxes, classes, nms);
            else diounms_sort(dets, nboxes, classes, nms, last.nms_kind, last.beta_nms);
#else
            do_nms_sort(dets, nboxes, classes, nms);
#endif
        }
        snprintf(name, sizeof name, "dets_t%g.npy", th);
        dump_dets(dets, nboxes, classes, name);
        int *order = malloc(sizeof(int) * (nboxes + 1));
        for (i = 0; i < nboxes; ++i)
            for (j = 0; j < nboxes; ++j)
                if (dets[i].prob == before[j]) order[i] = j;
        snprintf(name, sizeof name, "dets_t%g_order.npy", th);
        shape[0] = nboxes;
        write_npy(name, "<i4", shape, 1, order, 4);
        /* the lines draw_detections prints, captured from stdout */
        snprintf(name, sizeof name, "printed_t%g.txt", th);
        fflush(stdout);
        int saved = dup(1), fd = open(path_in(name), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || saved < 0) die("cannot write", path_in(name));
        dup2(fd, 1);
        close(fd);
        image canvas = copy_image(im);
#ifdef DPY_ALEXEYAB
        draw_detections_v3(canvas, dets, nboxes, th, names, 0, classes, 0);
#else
        draw_detections(canvas, dets, nboxes, th, names, 0, classes);
#endif
        fflush(stdout);
        dup2(saved, 1);
        close(saved);
        free_image(canvas);
        fprintf(facts, "dets %g %d\n", th, nboxes);
        free(order);
        free(before);
        free_detections(dets, nboxes);
    }
}

/* every layer's l.delta as the last backward left it (-D: iter1_delta_NNN.npy) */
static void dump_deltas(network *net, const char *prefix)
{
    int i, shape[4];
    for (i = 0; i < net->n; ++i) {
        layer l = net->layers[i];
        char name[64];
        if (!l.delta || l.outputs <= 0) continue;
        snprintf(name, sizeof name, "%sdelta_%03d.npy", prefix, i);
        write_f32(name, shape, layer_shape(l, l.batch, shape), l.delta);
        fprintf(facts, "delta %d\n", i);
    }
}

/* -- train: K train_network calls on one data batch --------------------------------------- */
/* the layers with a cost: heads, [softmax] and [cost] (Darknet's l.cost, counted in net->cost) */
static int is_train_head(layer l)
{
    return l.cost != 0;
}

static void train(network *net, int seed, char *x_path, char *y_path, int rows, int iterations,
                  int nbatches, int save_every, int deltas)
{
    int i, it, shape[4];
    if (rows <= 0 || rows % net->batch) die("rows must be a multiple of the mini-batch", 0);
    /* nbatches data batches of rows images, stacked; iteration it trains on batch (it-1) % nbatches */
    float *X = read_f32(x_path, (size_t)nbatches * rows * net->inputs);
    int truths = net_truths(net);
    float *Y = read_f32(y_path, (size_t)nbatches * rows * truths);
    data d = {0};
    d.X.rows = d.y.rows = rows;
    d.X.cols = net->inputs;
    d.y.cols = truths;
    d.X.vals = calloc(rows, sizeof(float *));
    d.y.vals = calloc(rows, sizeof(float *));
    for (i = 0; i < rows; ++i) {
        d.X.vals[i] = X + (size_t)i * net->inputs;
        d.y.vals[i] = Y + (size_t)i * truths;
    }
    srand(seed + 12345);
    for (it = 1; it <= iterations; ++it) {
        char name[64];
        size_t first = (size_t)((it - 1) % nbatches) * rows;
        for (i = 0; i < rows; ++i) {
            d.X.vals[i] = X + (first + i) * net->inputs;
            d.y.vals[i] = Y + (first + i) * truths;
        }
        float rate_before = net_rate(net);
        float loss = net_train(net, d);
        fprintf(facts, "train %d %.9g %.9g %.9g %llu %.9g\n", it, loss, rate_before, net_rate(net),
                (unsigned long long)*net->seen, net->cost ? *net->cost : NAN);
        if (it == 1) {
            dump_layers(net, "iter1_", net->batch, 1);
            if (deltas) dump_deltas(net, "iter1_");
            for (i = 0; i < net->n; ++i) {
                layer l = net->layers[i];
                if (!is_train_head(l)) continue;
                snprintf(name, sizeof name, "iter1_yolo_output_%03d.npy", i);
                write_f32(name, shape, layer_shape(l, l.batch, shape), l.output);
                snprintf(name, sizeof name, "iter1_yolo_delta_%03d.npy", i);
                write_f32(name, shape, layer_shape(l, l.batch, shape), l.delta);
                fprintf(facts, "cost %d %.9g\n", i, l.cost ? *l.cost : NAN);
            }
        }
        if (it % save_every && it != iterations) continue;
        snprintf(name, sizeof name, "weights_iter%d.weights", it);
        net_save(net, name);
    }
}

/* -- main --------------------------------------------------------------------------------- */
int main(int argc, char **argv)
{
    if (argc < 4) die("usage: dpy_harness MODE CFG|IMAGE OUT [options]", 0);
    char *mode = argv[1], *cfg = argv[2];
    gpu_index = -1; /* Darknet's CPU path, also in a GPU build: l.output etc. live in host memory */
    if (!strcmp(mode, "decode")) {
#ifdef DPY_ALEXEYAB
        image im = load_image(cfg, 0, 0, 3);
#else
        image im = load_image_color(cfg, 0, 0);
#endif
        int i, shape[3] = {im.c, im.h, im.w};
        unsigned char *u8 = malloc((size_t)im.w * im.h * im.c + 1);
        for (i = 0; i < im.w * im.h * im.c; ++i) u8[i] = (unsigned char)(im.data[i] * 255.f + .5f);
        out_dir = ".";
        write_npy(argv[3], "|u1", shape, 3, u8, 1);
        return 0;
    }
    out_dir = argv[3];
    char *weights = 0, *input = 0, *image_path = 0, *names = 0, *y_path = 0;
    int seed = 0, rows = 0, iterations = 1, nbatches = 1, save_every = 1, letter = 0, nthresh = 0, i;
    int deltas = 0;
    float thresholds[32], hier = .5f, nms = .45f;
    for (i = 4; i < argc; ++i) {
        char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : 0;
        if (!strcmp(a, "-l")) { letter = 1; continue; }
        if (!strcmp(a, "-D")) { deltas = 1; continue; }
        if (!v) die("missing value", a);
        ++i;
        if (!strcmp(a, "-w")) weights = v;
        else if (!strcmp(a, "-s")) seed = atoi(v);
        else if (!strcmp(a, "-i")) input = v;
        else if (!strcmp(a, "-m")) image_path = v;
        else if (!strcmp(a, "-n")) names = v;
        else if (!strcmp(a, "-y")) y_path = v;
        else if (!strcmp(a, "-r")) rows = atoi(v);
        else if (!strcmp(a, "-k")) iterations = atoi(v);
        else if (!strcmp(a, "-b")) nbatches = atoi(v);
        else if (!strcmp(a, "-e")) save_every = atoi(v);
        else if (!strcmp(a, "-H")) hier = atof(v);
        else if (!strcmp(a, "-N")) nms = atof(v);
        else if (!strcmp(a, "-t") && nthresh < 32) thresholds[nthresh++] = atof(v);
        else die("unknown option", a);
    }
    facts = fopen(path_in("harness.txt"), "w");
    if (!facts) die("cannot write", path_in("harness.txt"));
    if (!strcmp(mode, "info")) {
        network *net = net_parse(cfg);
        net_facts(net);
        dump_layers(net, "", 0, 0); /* listed, not written */
    } else if (!strcmp(mode, "forward")) {
        network *net = load_or_init(cfg, weights, seed, 1);
        net_facts(net);
        float *x = read_f32(input, net->inputs);
        net_predict(net, x);
        dump_layers(net, "", 0, 1);
    } else if (!strcmp(mode, "sequence")) {
        /* K network_predict calls at the cfg's own batch (time_steps * batch / subdivisions
           rows), one after another: recurrent layers keep their state between them */
        network *net = load_or_init(cfg, weights, seed, 0);
        net_facts(net);
        size_t per_call = (size_t)net->inputs * net->batch;
        float *x = read_f32(input, per_call * iterations);
        int k;
        for (k = 0; k < iterations; ++k) {
            char prefix[32];
            net_predict(net, x + per_call * k);
            snprintf(prefix, sizeof prefix, "call%d_", k);
            dump_layers(net, prefix, net->batch, 1);
        }
    } else if (!strcmp(mode, "detect")) {
        if (!image_path || !names) die("detect needs -m IMAGE -n NAMES", 0);
#ifdef DPY_ALEXEYAB
        network *net = calloc(1, sizeof(network));
        srand(seed);
        *net = weights ? parse_network_cfg_custom(cfg, 1, 1) : parse_network_cfg(cfg);
        set_batch_network(net, 1);
        if (weights) load_weights(net, weights);
        else { random_init(net, seed); net_save(net, "weights.weights"); }
#else
        network *net = load_or_init(cfg, weights, seed, 1);
#endif
        net_facts(net);
        detect(net, image_path, names, thresholds, nthresh, hier, nms, letter);
    } else if (!strcmp(mode, "train")) {
        if (!input || !y_path) die("train needs -i X -y Y -r ROWS", 0);
        network *net = load_or_init(cfg, weights, seed, 0);
        net_facts(net);
        /* both forks' make_lstm_layer allocate l.delta for the GPU only: a CPU training
           forward clears it (NULL) and dies. HARNESS_ALLOC_LSTM_DELTA=1 allocates it here
           (outputs*batch*steps floats, as forward/backward_lstm_layer index it) */
        if (getenv("HARNESS_ALLOC_LSTM_DELTA") && atoi(getenv("HARNESS_ALLOC_LSTM_DELTA"))) {
            for (i = 0; i < net->n; ++i) {
                layer *l = &net->layers[i];
                if (l->type != LSTM || l->delta) continue;
                l->delta = calloc((size_t)l->outputs * l->batch * l->steps, sizeof(float));
                fprintf(facts, "lstm_delta %d\n", i);
            }
        }
        if (nbatches < 1 || save_every < 1) die("-b and -e take a positive count", 0);
        train(net, seed, input, y_path, rows, iterations, nbatches, save_every, deltas);
    } else {
        die("unknown mode", mode);
    }
    fclose(facts);
    return 0;
}
