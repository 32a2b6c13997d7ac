// The baseline of the compile-time figure (issue 6): LeNet-300-100 as dlib spells it, a
// multilayer perceptron trained by dlib's dnn_trainer with SGD on MNIST-format data. Only
// compiled by benchmarks/compile_times.sh --dlib (Debian's libdlib-dev), not built by
// CMake; it is the dense network of our lenet_300_100 example without DST, the flags and
// the reports.
//
//   lenet_300_100_dlib MNIST_DIR   (uncompressed train-images-idx3-ubyte etc.)
#include <dlib/data_io.h>
#include <dlib/dnn.h>

#include <iostream>
#include <vector>

using mlp = dlib::loss_multiclass_log<
    dlib::fc<10, dlib::relu<dlib::fc<100, dlib::relu<dlib::fc<300, dlib::input<dlib::matrix<unsigned char>>>>>>>>;

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: lenet_300_100_dlib MNIST_DIR\n";
        return 1;
    }
    std::vector<dlib::matrix<unsigned char>> train_images, test_images;
    std::vector<unsigned long> train_labels, test_labels;
    dlib::load_mnist_dataset(argv[1], train_images, train_labels, test_images, test_labels);

    mlp net;
    dlib::dnn_trainer<mlp> trainer(net, dlib::sgd(0.0f, 0.9f));
    trainer.set_learning_rate(0.01);
    trainer.set_mini_batch_size(64);
    trainer.set_max_num_epochs(20);
    trainer.be_verbose();
    trainer.train(train_images, train_labels);
    net.clean();

    const std::vector<unsigned long> predicted = net(test_images);
    std::size_t correct = 0;
    for (std::size_t i = 0; i < predicted.size(); ++i) correct += predicted[i] == test_labels[i];
    std::cout << "test accuracy " << 100.0 * static_cast<double>(correct) / static_cast<double>(test_labels.size())
              << "%\n";
}
