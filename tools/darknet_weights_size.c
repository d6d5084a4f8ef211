/* Parse a cfg with a Darknet build and save its (freshly initialised) weights: the size of
 * that file is what this build's load_weights reads for the cfg. Build against either fork:
 *   cc -DDPY_ALEXEYAB -I BUILD/include darknet_weights_size.c BUILD/libdarknet.so -o ws
 *   cc -I BUILD/include darknet_weights_size.c BUILD/libdarknet.a -lm -lpthread -o ws
 * usage: ws CFG OUT.weights   (prints the byte count on stdout) */
#include <stdio.h>
#include "darknet.h"
#ifdef DPY_ALEXEYAB
void save_weights(network net, char *filename);
network parse_network_cfg_custom(char *filename, int batch, int time_steps);
#endif

int main(int argc, char **argv)
{
    if (argc != 3) { fprintf(stderr, "usage: %s CFG OUT\n", argv[0]); return 2; }
#ifdef DPY_ALEXEYAB
    network net = parse_network_cfg_custom(argv[1], 1, 1);
    save_weights(net, argv[2]);
#else
    network *net = parse_network_cfg(argv[1]);
    save_weights(net, argv[2]);
#endif
    FILE *f = fopen(argv[2], "rb");
    if (!f) return 1;
    fseek(f, 0, SEEK_END);
    printf("%ld\n", ftell(f));
    fclose(f);
    return 0;
}
